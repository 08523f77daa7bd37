import {
  Schema,
  arrayOf,
  bool,
  described,
  fields,
  int,
  msgOnly,
  nullable,
  num,
  object,
  oneOfValues,
  ref,
  str,
  QUOTA_NAMES,
  TASK_STATUSES,
  TOKEN_FIELDS,
} from './schemas';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * Who may call a route: `token` a project token (or the admin's), `admin` the admin token alone,
 * `public` anyone (the route checks what it needs itself: the trigger's secret, `/metrics`' token).
 */
export type Access = 'token' | 'admin' | 'public';

/** What a route answers with 200 besides JSON: a text or binary body of that media type. */
export interface NotJson {
  mediaType: string;
  schema?: Schema;
}

/** One route of the API, as the document describes it; `document.ts` turns it into an operation. */
export interface Route {
  method: Method;
  /** The OpenAPI path template, `{name}` for Nest's `:name`. */
  path: string;
  tag: string;
  summary: string;
  /** When the one made of the method and path would be another route's (`document.ts`). */
  operationId?: string;
  access: Access;
  /** The least role of a project token (the admin token passes all); docs/security.md. */
  role?: 'read' | 'queue' | 'manage';
  query?: Record<string, Schema>;
  /** Query parameters a client must send. */
  requiredQuery?: string[];
  /** A JSON body, or the media types of a body taken as it is. */
  body?: Schema | { raw: string[]; description: string } | { multipart: Schema };
  /** The 200 answer. */
  ok: Schema | NotJson;
  /** Other answers a client should expect from this route, beyond the usual errors (with a description). */
  also?: Record<number, Schema>;
}

const PROJECT = '/2/projects/{projectId}';
const paging = { page: int('0-100.'), per_page: int('1-100.') };
const msg = (text: string): Schema => msgOnly(text);
const list = (key: string, item: Schema): Schema => object({ [key]: arrayOf(item) });
const TEXT: NotJson = { mediaType: 'text/plain', schema: { type: 'string' } };

const PROJECTS: Route[] = [
  {
    method: 'post',
    path: '/2/projects',
    tag: 'projects',
    summary: 'Create a project',
    access: 'admin',
    body: fields({ name: str() }, ['name']),
    ok: object({ msg: str('`Project Created`.'), id: ref('Id'), project: ref('Project') }),
  },
  {
    method: 'get',
    path: '/2/projects',
    tag: 'projects',
    summary: 'List the projects (a project token sees its own)',
    access: 'token',
    ok: list('projects', ref('Project')),
  },
  {
    method: 'get',
    path: PROJECT,
    tag: 'projects',
    summary: 'Get a project',
    access: 'token',
    ok: ref('Project'),
  },
  {
    method: 'patch',
    path: PROJECT,
    tag: 'projects',
    summary: "Set a project's max_running and retention_days",
    access: 'admin',
    body: fields({ max_running: nullable(int()), retention_days: nullable(int()) }),
    ok: object({ msg: str('`Project updated`.'), project: ref('Project') }),
  },
  {
    method: 'get',
    path: `${PROJECT}/tokens`,
    tag: 'tokens',
    summary: "List the project's tokens (never their secrets)",
    access: 'token',
    role: 'manage',
    ok: list('tokens', ref('Token')),
  },
  {
    method: 'post',
    path: `${PROJECT}/tokens`,
    tag: 'tokens',
    summary: 'Issue a token; the only answer holding its secret',
    access: 'token',
    role: 'manage',
    body: fields({ name: str(), role: ref('TokenRole'), expires_at: str('RFC3339, future.') }),
    ok: object({
      msg: str('`Token created`.'),
      project_id: ref('Id'),
      token: str('`kiln_…`.'),
      ...TOKEN_FIELDS,
    }),
  },
  {
    method: 'delete',
    path: `${PROJECT}/tokens/{tokenId}`,
    tag: 'tokens',
    summary: 'Revoke a token',
    access: 'token',
    role: 'manage',
    ok: msg('`Revoked`.'),
  },
  {
    method: 'get',
    path: `${PROJECT}/clusters`,
    tag: 'projects',
    summary: 'The clusters granted to the project',
    access: 'token',
    ok: list('clusters', object({ name: str(), granted_at: ref('Time') })),
  },
  {
    method: 'put',
    path: `${PROJECT}/clusters/{cluster}`,
    tag: 'projects',
    summary: 'Grant a cluster',
    access: 'admin',
    ok: object({ msg: str('`Granted`.'), cluster: str() }),
  },
  {
    method: 'delete',
    path: `${PROJECT}/clusters/{cluster}`,
    tag: 'projects',
    summary: 'Revoke a cluster grant',
    access: 'admin',
    ok: object({ msg: str('`Revoked`.'), cluster: str() }),
  },
  {
    method: 'get',
    path: `${PROJECT}/quotas`,
    tag: 'projects',
    summary: "The project's quotas",
    access: 'token',
    ok: ref('Quotas'),
  },
  {
    method: 'put',
    path: `${PROJECT}/quotas`,
    tag: 'projects',
    summary: "Set the project's own quotas (null: the operator's)",
    access: 'admin',
    body: fields(Object.fromEntries(QUOTA_NAMES.map((name) => [name, nullable(int())]))),
    ok: object({
      msg: str('`Updated`.'),
      quotas: { $ref: '#/components/schemas/Quotas/properties/quotas' },
      overrides: { $ref: '#/components/schemas/Quotas/properties/overrides' },
    }),
  },
  {
    method: 'post',
    path: `${PROJECT}/credentials`,
    tag: 'images',
    summary: "Store the project's login to a registry (`iron docker login`)",
    access: 'token',
    body: fields({
      auth: str('Base64 of the JSON below.'),
      serveraddress: str(),
      username: str(),
      password: str(),
      email: str(),
    }),
    ok: msg('`Credentials added.`'),
  },
  {
    method: 'get',
    path: `${PROJECT}/credentials`,
    tag: 'images',
    summary: "The project's registry logins (never the password)",
    access: 'token',
    ok: list(
      'credentials',
      object({
        serveraddress: str(),
        username: str(),
        created_at: ref('Time'),
        updated_at: ref('Time'),
      }),
    ),
  },
  {
    method: 'delete',
    path: `${PROJECT}/credentials`,
    tag: 'images',
    summary: "Delete the project's login to a registry",
    access: 'token',
    query: { serveraddress: str('host[:port].') },
    requiredQuery: ['serveraddress'],
    ok: msg('`Deleted`.'),
  },
];

const CODE = `${PROJECT}/codes/{codeId}`;

const CODES: Route[] = [
  {
    method: 'post',
    path: `${PROJECT}/codes`,
    tag: 'codes',
    summary: 'Register a code (a new revision of the code of that name)',
    access: 'token',
    body: {
      multipart: fields({
        data: str('The code settings as a JSON string (`CodeSpec`).'),
        file: { type: 'string', contentMediaType: 'application/octet-stream' },
      }),
    },
    ok: ref('Upload'),
  },
  {
    method: 'post',
    path: `${PROJECT}/codes/{codeName}/image`,
    tag: 'codes',
    summary: "Upload a `docker save` tarball as the code's image",
    access: 'token',
    body: {
      raw: ['application/x-tar', 'application/gzip', 'application/octet-stream'],
      description: 'The `docker save` tarball, plain or gzip.',
    },
    ok: ref('Upload'),
    also: { 415: described(ref('Error'), 'The Content-Type is not a tarball type.') },
  },
  {
    method: 'get',
    path: `${PROJECT}/codes`,
    tag: 'codes',
    summary: 'List codes',
    access: 'token',
    query: paging,
    ok: list('codes', ref('Code')),
  },
  {
    method: 'get',
    path: CODE,
    tag: 'codes',
    summary: 'Get a code',
    access: 'token',
    ok: ref('Code'),
  },
  {
    method: 'delete',
    path: CODE,
    tag: 'codes',
    summary: 'Delete a code',
    access: 'token',
    ok: msg('`Deleted`.'),
  },
  {
    method: 'get',
    path: `${CODE}/revisions`,
    tag: 'codes',
    summary: "A code's revisions, newest first",
    access: 'token',
    query: paging,
    ok: list('revisions', ref('CodeRevision')),
  },
  {
    method: 'get',
    path: `${CODE}/download`,
    tag: 'codes',
    summary: 'A zip holding `kiln-code.json` of a revision',
    access: 'token',
    query: { revision: int('Default: the latest.') },
    ok: {
      mediaType: 'application/zip',
      schema: { type: 'string', contentMediaType: 'application/zip' },
    },
  },
  {
    method: 'get',
    path: `${CODE}/stats`,
    tag: 'codes',
    summary: "The code's task counts per status over a window (default the last 24 h)",
    access: 'token',
    query: { start_date: int('Epoch seconds.'), end_date: int('Epoch seconds.') },
    ok: object(Object.fromEntries(TASK_STATUSES.map((status) => [status, int()]))),
  },
  {
    method: 'post',
    path: `${CODE}/pause_task_queue`,
    tag: 'codes',
    summary: "Pause a code's queue (its tasks stay queued)",
    access: 'token',
    ok: msg('`Paused` or `Already paused`.'),
  },
  {
    method: 'post',
    path: `${CODE}/resume_task_queue`,
    tag: 'codes',
    summary: "Resume a code's queue",
    access: 'token',
    ok: msg('`Resumed` or `Already resumed`.'),
  },
  {
    method: 'post',
    path: `${CODE}/cancel_all`,
    tag: 'codes',
    summary: 'Cancel every task of the code that has not ended',
    access: 'token',
    role: 'queue',
    ok: object({ msg: str('`Cancelled`.'), cancelled: int() }),
  },
  {
    method: 'post',
    path: `${PROJECT}/codes/{codeName}/invoke`,
    tag: 'tasks',
    summary: 'Run one task and answer when it ends (Kiln)',
    access: 'token',
    role: 'queue',
    query: { wait: int('Seconds, 1-300 (default 30).') },
    body: described(fields(taskFieldsExceptCode()), 'One task of `POST tasks`, no `priority`.'),
    ok: ref('InvokeResult'),
    also: {
      504: object(
        { msg: str(), id: ref('Id') },
        { description: '`wait` passed first; the task goes on.' },
      ),
    },
  },
];

/** The fields of a `TaskSpec` an invoke takes: the code is the path's, the priority always 2. */
function taskFieldsExceptCode(): Record<string, Schema> {
  return {
    payload: str(),
    timeout: num(),
    delay: num(),
    cluster: str(),
    label: str(),
    webhook: str(),
  };
}

const TASK = `${PROJECT}/tasks/{taskId}`;
/** What a bulk cancel or retry acts on: one of the two. */
const BULK_TARGET: Record<string, Schema> = {
  ids: arrayOf(ref('Id')),
  filter: described(
    { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    "The list's filters: status flags, `code_name`, `label`, `cluster`, `from_time`, `to_time`.",
  ),
};

const TASKS: Route[] = [
  {
    method: 'post',
    path: `${PROJECT}/tasks`,
    tag: 'tasks',
    summary: 'Queue tasks (1-100)',
    access: 'token',
    role: 'queue',
    body: fields({ tasks: arrayOf(ref('TaskSpec')) }, ['tasks']),
    ok: ref('QueuedIds'),
  },
  {
    method: 'post',
    path: `${PROJECT}/tasks/webhook`,
    tag: 'tasks',
    summary: 'Queue a task whose payload is the body (IronWorker webhook)',
    access: 'token',
    role: 'queue',
    query: {
      code_name: str(),
      priority: num(),
      cluster: str(),
      timeout: num(),
      delay: num(),
      label: str(),
    },
    requiredQuery: ['code_name'],
    body: { raw: ['*/*'], description: 'Any body, any Content-Type: the payload.' },
    ok: object({ id: ref('Id'), msg: str('`Queued up.`') }),
  },
  {
    method: 'get',
    path: `${PROJECT}/tasks`,
    tag: 'tasks',
    summary: 'List tasks, newest first; other query keys are a 400',
    access: 'token',
    query: {
      ...Object.fromEntries(TASK_STATUSES.map((status) => [status, str('`1`: include them.')])),
      code_name: str(),
      label: str(),
      cluster: str(),
      from_time: int('Epoch seconds.'),
      to_time: int('Epoch seconds.'),
      ...paging,
      cursor: str('Kiln: empty for the first page, then the `next_cursor` answered.'),
      q: str('Kiln: a task id, or text searched for in payloads (pages by cursor).'),
    },
    ok: object(
      {
        tasks: arrayOf(ref('Task')),
        next_cursor: nullable(str('Kiln, with `cursor` or `q`: the next page; null at the end.')),
      },
      { optional: ['next_cursor'] },
    ),
  },
  {
    method: 'post',
    path: `${PROJECT}/tasks/cancel`,
    tag: 'tasks',
    summary: 'Cancel many tasks: by ids, or every task matching a filter (Kiln)',
    operationId: 'postProjectsTasksCancelMany',
    access: 'token',
    role: 'queue',
    body: fields(BULK_TARGET),
    ok: object(
      {
        msg: str('`Cancelled`.'),
        cancelled: int(),
        not_found: int('By ids: ids of no task of this project, or of tasks already ended.'),
        more: bool('By filter: more matching tasks are left (call again).'),
      },
      { optional: ['not_found', 'more'] },
    ),
  },
  {
    method: 'post',
    path: `${PROJECT}/tasks/retry`,
    tag: 'tasks',
    summary: 'Retry many ended tasks: by ids, or every ended task matching a filter (Kiln)',
    operationId: 'postProjectsTasksRetryMany',
    access: 'token',
    role: 'queue',
    body: fields({ ...BULK_TARGET, delay: int('Seconds before the retries run.') }),
    ok: object(
      {
        msg: str('`Queued up`.'),
        retried: int(),
        tasks: arrayOf(object({ id: ref('Id'), original_task_id: ref('Id') })),
        not_found: int('By ids: ids of no ended task of this project.'),
        more: bool('By filter: more matching tasks are left (call again).'),
      },
      { optional: ['not_found', 'more'] },
    ),
  },
  {
    method: 'get',
    path: TASK,
    tag: 'tasks',
    summary: 'Get a task',
    access: 'token',
    ok: ref('Task'),
  },
  {
    method: 'get',
    path: `${TASK}/log`,
    tag: 'tasks',
    summary: "The task's log (STDOUT and STDERR); `?follow=1` streams it (Kiln)",
    access: 'token',
    query: { follow: str('`1`: stream until the task ends (plain, or SSE).') },
    ok: {
      mediaType: 'text/plain',
      schema: {
        type: 'string',
        description: '`text/event-stream` instead with `follow=1` and that `Accept`.',
      },
    },
  },
  {
    method: 'get',
    path: `${TASK}/chain`,
    tag: 'tasks',
    summary: 'The retry chain the task is in, oldest first, without payloads (Kiln)',
    access: 'token',
    ok: list('tasks', ref('TaskSummary')),
  },
  {
    method: 'get',
    path: `${TASK}/deliveries`,
    tag: 'tasks',
    summary: "The task's webhook deliveries, newest first (Kiln)",
    access: 'token',
    query: paging,
    ok: list('deliveries', ref('Delivery')),
  },
  {
    method: 'get',
    path: `${TASK}/outlog`,
    tag: 'tasks',
    summary: "The ended task's STDOUT",
    access: 'token',
    ok: TEXT,
  },
  {
    method: 'post',
    path: `${TASK}/cancel`,
    tag: 'tasks',
    summary: 'Cancel a task',
    access: 'token',
    role: 'queue',
    ok: msg('`Cancelled`.'),
  },
  {
    method: 'post',
    path: `${TASK}/progress`,
    tag: 'tasks',
    summary: "Set a task's progress",
    access: 'token',
    role: 'queue',
    body: fields({ percent: num('0-100.'), msg: str() }),
    ok: msg('`Progress set`.'),
  },
  {
    method: 'post',
    path: `${TASK}/retry`,
    tag: 'tasks',
    summary: 'Queue a new task running this one again',
    access: 'token',
    role: 'queue',
    body: fields({ delay: num() }),
    ok: ref('QueuedIds'),
  },
];

const SCHEDULE = `${PROJECT}/schedules/{scheduleId}`;

const SCHEDULES: Route[] = [
  {
    method: 'post',
    path: `${PROJECT}/schedules`,
    tag: 'schedules',
    summary: 'Create schedules (1-100)',
    access: 'token',
    body: fields({ schedules: arrayOf(ref('ScheduleSpec')) }, ['schedules']),
    ok: object({ msg: str('`Scheduled`.'), schedules: arrayOf(object({ id: ref('Id') })) }),
  },
  {
    method: 'get',
    path: `${PROJECT}/schedules`,
    tag: 'schedules',
    summary: 'List schedules',
    access: 'token',
    query: paging,
    ok: list('schedules', ref('Schedule')),
  },
  {
    method: 'get',
    path: SCHEDULE,
    tag: 'schedules',
    summary: 'Get a schedule',
    access: 'token',
    ok: ref('Schedule'),
  },
  {
    method: 'put',
    path: SCHEDULE,
    tag: 'schedules',
    summary: 'Change a schedule (the fields given)',
    access: 'token',
    body: ref('ScheduleSpec'),
    ok: msg('`Updated`.'),
  },
  {
    method: 'post',
    path: `${SCHEDULE}/cancel`,
    tag: 'schedules',
    summary: 'Cancel a schedule',
    access: 'token',
    ok: msg('`Cancelled`.'),
  },
];

const WEBHOOK = `${PROJECT}/webhooks/{webhookId}`;
const DRAIN = `${PROJECT}/log_drains/{drainId}`;

const WEBHOOKS: Route[] = [
  {
    method: 'post',
    path: `${PROJECT}/webhooks`,
    tag: 'webhooks',
    summary: 'Subscribe an endpoint; the only answer holding its secret',
    access: 'token',
    body: described(ref('WebhookSpec'), '`url` required.'),
    ok: ref('Webhook'),
  },
  {
    method: 'get',
    path: `${PROJECT}/webhooks`,
    tag: 'webhooks',
    summary: 'List subscriptions',
    access: 'token',
    ok: list('webhooks', ref('Webhook')),
  },
  {
    method: 'get',
    path: `${PROJECT}/webhooks/task_secret`,
    tag: 'webhooks',
    summary: 'The secret signing per-task `webhook` calls',
    access: 'token',
    role: 'manage',
    ok: object({ secret: str() }),
  },
  {
    method: 'get',
    path: WEBHOOK,
    tag: 'webhooks',
    summary: 'Get a subscription with its endpoint state',
    access: 'token',
    ok: ref('Webhook'),
  },
  {
    method: 'patch',
    path: WEBHOOK,
    tag: 'webhooks',
    summary: 'Change a subscription',
    access: 'token',
    body: ref('WebhookSpec'),
    ok: ref('Webhook'),
  },
  {
    method: 'delete',
    path: WEBHOOK,
    tag: 'webhooks',
    summary: 'Delete a subscription',
    access: 'token',
    ok: msg('`Deleted`.'),
  },
  {
    method: 'post',
    path: `${WEBHOOK}/rotate_secret`,
    tag: 'webhooks',
    summary: "Rotate a subscription's secret (the old one signs too for a while)",
    access: 'token',
    ok: object({ secret: str(), msg: str('`Secret rotated.`') }),
  },
  {
    method: 'get',
    path: `${WEBHOOK}/deliveries`,
    tag: 'webhooks',
    summary: "A subscription's deliveries, newest first",
    access: 'token',
    query: paging,
    ok: list('deliveries', ref('Delivery')),
  },
  {
    method: 'post',
    path: `${WEBHOOK}/deliveries/{deliveryId}/redeliver`,
    tag: 'webhooks',
    summary: 'Send a delivery again',
    access: 'token',
    ok: msg('`Redelivery queued.`'),
  },
  {
    method: 'post',
    path: `${CODE}/triggers`,
    tag: 'triggers',
    summary: 'Make a trigger URL; the only answer holding its secret',
    access: 'token',
    body: fields({
      hmac_header: str(),
      hmac_secret: str(),
      hmac_prefix: str(),
      hmac_encoding: oneOfValues(['hex', 'base64']),
      cluster: str(),
    }),
    ok: ref('Trigger'),
  },
  {
    method: 'get',
    path: `${CODE}/triggers`,
    tag: 'triggers',
    summary: "A code's live trigger URLs (without secrets)",
    access: 'token',
    ok: list('triggers', ref('Trigger')),
  },
  {
    method: 'delete',
    path: `${CODE}/triggers/{triggerId}`,
    tag: 'triggers',
    summary: 'Revoke a trigger URL',
    access: 'token',
    ok: msg('`Revoked`.'),
  },
  {
    method: 'post',
    path: `${PROJECT}/triggers/{triggerId}`,
    tag: 'triggers',
    summary: "A trigger URL: queue a task of its code (the trigger's secret, no token)",
    access: 'public',
    query: { secret: str('Or the `X-Kiln-Trigger-Secret` header.') },
    body: { raw: ['*/*'], description: 'Any body, any Content-Type: the payload.' },
    ok: object({ id: ref('Id'), msg: str('`Queued up.`') }),
    also: { 403: described(ref('Error'), "The trigger's cluster is no longer granted.") },
  },
  {
    method: 'post',
    path: `${PROJECT}/log_drains`,
    tag: 'log drains',
    summary: 'Add a log drain; an `https` one answers its secret this once',
    access: 'token',
    body: described(ref('LogDrainSpec'), '`url` required.'),
    ok: ref('LogDrain'),
  },
  {
    method: 'get',
    path: `${PROJECT}/log_drains`,
    tag: 'log drains',
    summary: 'List log drains',
    access: 'token',
    ok: list('log_drains', ref('LogDrain')),
  },
  {
    method: 'get',
    path: DRAIN,
    tag: 'log drains',
    summary: 'Get a log drain',
    access: 'token',
    ok: ref('LogDrain'),
  },
  {
    method: 'patch',
    path: DRAIN,
    tag: 'log drains',
    summary: 'Change a log drain',
    access: 'token',
    body: ref('LogDrainSpec'),
    ok: ref('LogDrain'),
  },
  {
    method: 'delete',
    path: DRAIN,
    tag: 'log drains',
    summary: 'Delete a log drain',
    access: 'token',
    ok: msg('`Deleted`.'),
  },
];

const OPERATIONS: Route[] = [
  {
    method: 'get',
    path: '/healthz',
    tag: 'operations',
    summary: 'Whether Postgres and Redis answer (what failed: with the admin token)',
    access: 'public',
    ok: ref('Health'),
    also: {
      503: described(ref('Health'), 'Postgres or Redis is down, or the process is stopping.'),
    },
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'operations',
    summary: 'Prometheus metrics (the admin token or `KILN_METRICS_TOKEN`)',
    access: 'public',
    ok: { mediaType: 'text/plain', schema: { type: 'string' } },
  },
  {
    method: 'get',
    path: '/openapi.json',
    tag: 'operations',
    summary: 'This document',
    access: 'public',
    ok: { type: 'object', description: 'An OpenAPI 3.1 document.' },
  },
];

const COUNTS_BY_STATUS = Object.fromEntries(TASK_STATUSES.map((status) => [status, int()]));

const STACKS: Route[] = [
  {
    method: 'get',
    path: '/2/stacks',
    tag: 'codes',
    summary: "The operator's stacks (`KILN_STACKS`) a zip package may run on, by name",
    access: 'token',
    ok: arrayOf(str()),
  },
];

const OVERVIEW: Route[] = [
  {
    method: 'get',
    path: `${PROJECT}/stats`,
    tag: 'overview',
    summary: "The project's tasks over a window, by code and in buckets, and its queues now (Kiln)",
    access: 'token',
    query: {
      start_date: int('Epoch seconds; by default 24 hours before `end_date`.'),
      end_date: int('Epoch seconds; by default now.'),
    },
    ok: object({
      start: ref('Time'),
      end: ref('Time'),
      bucket_seconds: int(),
      codes: arrayOf(
        object(
          { code_name: str(), ...COUNTS_BY_STATUS },
          { description: 'Tasks created in the window, by status.' },
        ),
      ),
      series: arrayOf(
        object({
          start: ref('Time'),
          complete: int(),
          error: int(),
          timeout: int(),
          killed: int(),
        }),
      ),
      clusters: arrayOf(
        object({
          cluster: str(),
          queued: int(),
          oldest_queued_at: nullable(ref('Time')),
          oldest_queued_seconds: int(),
          running: int(),
        }),
      ),
      running: int('Tasks running now, whenever created.'),
    }),
  },
];

/** The dashboard's session (docs/dashboard.md): a token exchanged for an HttpOnly cookie. */
const UI_SESSION = object({
  csrf: str('Sent back in `X-Kiln-CSRF` by every request other than GET/HEAD.'),
  admin: bool(),
  project_id: nullable(ref('Id')),
  role: oneOfValues(['read', 'queue', 'manage', 'admin']),
  expires_at: ref('Time'),
});

const DASHBOARD: Route[] = [
  {
    method: 'post',
    path: '/ui/session',
    tag: 'dashboard',
    summary: 'Sign in: a token for a session cookie (`kiln_session`, HttpOnly, SameSite=Strict)',
    access: 'public',
    body: fields({ token: str('A project token or the admin token.') }, ['token']),
    ok: UI_SESSION,
  },
  {
    method: 'get',
    path: '/ui/session',
    tag: 'dashboard',
    summary: 'The session of the cookie sent (401 when it has ended)',
    access: 'public',
    ok: UI_SESSION,
  },
  {
    method: 'delete',
    path: '/ui/session',
    tag: 'dashboard',
    summary: 'Sign out: ends the session on the server and clears the cookie',
    access: 'public',
    ok: { type: 'object', additionalProperties: false },
    also: { 403: msg("Without the session's `X-Kiln-CSRF` header.") },
  },
];

/**
 * Every route of the API. A new route is one entry here (in its area's list); `openapi.spec.ts`
 * fails until the document and the app's routes agree.
 */
export const ROUTES: Route[] = [
  ...OPERATIONS,
  ...PROJECTS,
  ...CODES,
  ...TASKS,
  ...SCHEDULES,
  ...WEBHOOKS,
  ...STACKS,
  ...OVERVIEW,
  ...DASHBOARD,
];
