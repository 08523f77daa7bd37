import { FINAL_TASK_STATUSES, TOKEN_ROLES, WEBHOOK_EVENTS } from '@kiln/client';

/**
 * The JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of what the API sends and takes. Only
 * `@kiln/client`'s constants are imported, so the test support can build the document in-process
 * without loading the server's libraries; `openapi.spec.ts` checks the lists kept here (statuses,
 * quota names) against the server's own.
 */
export type Schema = Record<string, unknown>;

/** A reference to a schema of `components.schemas`. */
export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/** `schema` or JSON null (3.1 spells nullability as a type union). */
export function nullable(schema: Schema): Schema {
  if (typeof schema.type === 'string') return { ...schema, type: [schema.type, 'null'] };
  return { anyOf: [schema, { type: 'null' }] };
}

/** `schema` with its description, when there is one (no `description: undefined` keys). */
export const described = (schema: Schema, description?: string): Schema =>
  description === undefined ? schema : { ...schema, description };

export const str = (description?: string): Schema => described({ type: 'string' }, description);
export const int = (description?: string): Schema => described({ type: 'integer' }, description);
export const num = (description?: string): Schema => described({ type: 'number' }, description);
export const bool = (description?: string): Schema => described({ type: 'boolean' }, description);
export const arrayOf = (items: Schema): Schema => ({ type: 'array', items });
export const oneOfValues = (values: readonly string[], description?: string): Schema =>
  described({ type: 'string', enum: [...values] }, description);

/**
 * An object whose listed fields are all sent (`optional` names those sometimes left out) and
 * which has no others: precise enough for generated clients, and an answer growing a field the
 * document does not know fails the answer check of the e2e suites.
 */
export function object(
  properties: Record<string, Schema>,
  { optional = [], description }: { optional?: string[]; description?: string } = {},
): Schema {
  return described(
    {
      type: 'object',
      properties,
      required: Object.keys(properties).filter((name) => !optional.includes(name)),
      additionalProperties: false,
    },
    description,
  );
}

/** An object of free-form fields (a request body's options: unknown keys are ignored). */
export function fields(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, ...(required.length > 0 ? { required } : {}) };
}

/** `{"msg": "…"}`, every error answer and many a success (`Deleted`, `Cancelled`, …). */
export const msgOnly = (description?: string): Schema => object({ msg: str() }, { description });

/** IronWorker's task statuses, in the order of the status machine (docs/api.md). */
export const TASK_STATUSES = ['queued', 'preparing', 'running', ...FINAL_TASK_STATUSES] as const;

/** The names of a project's quotas, as the API spells them (`QUOTA_FIELDS` of `@kiln/projects`). */
export const QUOTA_NAMES = [
  'queued_tasks',
  'schedules',
  'webhooks',
  'log_drains',
  'triggers_per_code',
  'log_followers',
  'invokes',
] as const;

const HOT_SETTING = object({
  idle_timeout: int('Seconds a warm container waits for its next task.'),
  max_tasks: int('Tasks one container takes before it is replaced.'),
  max_containers: int('Warm containers of the code at most.'),
});

const quotaValues = (description: string): Schema =>
  described(
    {
      type: 'object',
      properties: Object.fromEntries(QUOTA_NAMES.map((name) => [name, int()])),
      additionalProperties: false,
    },
    description,
  );

/** A token's fields as listed (and, with its secret, as created). */
export const TOKEN_FIELDS: Record<string, Schema> = {
  id: ref('Id'),
  name: str(),
  role: ref('TokenRole'),
  created_at: ref('Time'),
  last_used_at: nullable(ref('Time')),
  expires_at: nullable(ref('Time')),
};

/** A task's fields as answered (task.presenter.ts `taskJson`). */
const TASK_FIELDS: Record<string, Schema> = {
  id: ref('Id'),
  project_id: ref('Id'),
  code_id: ref('Id'),
  code_history_id: ref('Id'),
  code_name: str(),
  code_rev: str('The code revision, as a string (IronWorker decodes it as one).'),
  status: ref('TaskStatus'),
  priority: int(),
  payload: str(),
  timeout: int(),
  delay: int(),
  cluster: str(),
  label: str(),
  created_at: ref('Time'),
  updated_at: ref('Time'),
  start_time: ref('Time'),
  end_time: ref('Time'),
  duration: int('Milliseconds.'),
  run_times: int(),
  percent: int(),
  msg: str('Empty on success.'),
  log_size: int(),
  retry_count: int(),
  original_task_id: ref('Id'),
  retry_task_id: ref('Id'),
  schedule_id: ref('Id'),
  webhook: str(),
};
const TASK_OPTIONAL = ['original_task_id', 'retry_task_id', 'schedule_id', 'webhook'];

/** `components.schemas`: each resource once, referenced by the routes. */
export const SCHEMAS: Record<string, Schema> = {
  Id: {
    type: 'string',
    pattern: '^[0-9a-f]{24}$',
    description: '24 lowercase hex characters, time-ordered.',
  },
  Time: {
    type: 'string',
    format: 'date-time',
    description: 'UTC, `YYYY-MM-DDTHH:MM:SS.sssZ`; unset times are `0001-01-01T00:00:00Z`.',
  },
  Error: msgOnly('Every error: a precise 4xx, 503 while Postgres or Redis is away.'),
  Message: msgOnly(),
  TaskStatus: oneOfValues(TASK_STATUSES),
  FinalTaskStatus: oneOfValues(FINAL_TASK_STATUSES),
  TokenRole: oneOfValues(TOKEN_ROLES),
  WebhookEvent: oneOfValues(WEBHOOK_EVENTS),
  HotSetting: HOT_SETTING,
  QueuedIds: object({
    msg: str('`Queued up`.'),
    tasks: arrayOf(object({ id: ref('Id') })),
  }),
  Health: object(
    {
      status: oneOfValues(['ok', 'unavailable', 'draining']),
      checks: {
        type: 'object',
        description: 'With the admin token only: `ok` or `error: …` per dependency.',
        additionalProperties: { type: 'string' },
      },
    },
    { optional: ['checks'] },
  ),
  Project: object({
    id: ref('Id'),
    name: str(),
    max_running: nullable(int('null: the operator default (`KILN_PROJECT_MAX_RUNNING`).')),
    retention_days: nullable(int('null: the operator default (`KILN_TASK_RETENTION_DAYS`).')),
    created_at: ref('Time'),
    updated_at: ref('Time'),
  }),
  Token: object(TOKEN_FIELDS),
  Quotas: object({
    quotas: quotaValues('What applies to the project.'),
    overrides: quotaValues("The project's own values (the rest are the operator's)."),
  }),
  Code: object(
    {
      id: ref('Id'),
      project_id: ref('Id'),
      name: str(),
      created_at: ref('Time'),
      updated_at: ref('Time'),
      rev: int(),
      latest_history_id: ref('Id'),
      latest_change: ref('Time'),
      image: str(),
      command: str(),
      config: str(),
      env_vars: { type: 'object', additionalProperties: { type: 'string' } },
      max_concurrency: int('-1 while paused; absent: unlimited.'),
      retries: int(),
      retries_delay: int(),
      priority: int(),
      default_priority: int(),
      cpus: nullable(num("null: the server's default.")),
      memory: nullable(int("MiB; null: the server's default.")),
      hot: nullable(ref('HotSetting')),
      latest_checksum: str("The latest revision's zip package's SHA-256 (hex); empty without one."),
      zip_digest: nullable(
        str("`sha256:<hex>` of the latest revision's zip package; null without one."),
      ),
    },
    { optional: ['max_concurrency'] },
  ),
  CodeRevision: object({
    id: ref('Id'),
    code_id: ref('Id'),
    project_id: ref('Id'),
    name: str(),
    rev: int(),
    created_at: ref('Time'),
    updated_at: ref('Time'),
    image: str(),
    command: str(),
    config: str(),
    env_vars: { type: 'object', additionalProperties: { type: 'string' } },
    cpus: nullable(num()),
    memory: nullable(int()),
    hot: nullable(ref('HotSetting')),
    zip_digest: nullable(str("`sha256:<hex>` of the revision's zip package; null without one.")),
  }),
  Task: object(TASK_FIELDS, { optional: TASK_OPTIONAL }),
  TaskSummary: object(
    Object.fromEntries(Object.entries(TASK_FIELDS).filter(([name]) => name !== 'payload')),
    {
      optional: TASK_OPTIONAL,
      description: 'A task without its payload (lists of the dashboard).',
    },
  ),
  Schedule: object(
    {
      id: ref('Id'),
      project_id: ref('Id'),
      code_name: str(),
      payload: str(),
      status: oneOfValues(['scheduled', 'complete', 'cancelled']),
      msg: str(),
      created_at: ref('Time'),
      updated_at: ref('Time'),
      start_at: ref('Time'),
      end_at: ref('Time'),
      next_start: ref('Time'),
      last_run_time: ref('Time'),
      run_every: int('Seconds; 0 for a cron schedule.'),
      run_times: int('0: unlimited.'),
      run_count: int(),
      error_count: int(),
      priority: int(),
      timeout: int(),
      delay: int(),
      task_delay: int(),
      cluster: str(),
      label: str(),
      max_concurrency: int(),
      cron: str(),
      timezone: str(),
    },
    { optional: ['cron', 'timezone'] },
  ),
  Webhook: object(
    {
      id: ref('Id'),
      url: str(),
      events: arrayOf(ref('WebhookEvent')),
      code_name: nullable(str()),
      enabled: bool(),
      disabled_reason: nullable(str()),
      description: str(),
      created_at: ref('Time'),
      updated_at: ref('Time'),
      circuit: oneOfValues(['closed', 'open', 'disabled']),
      failures: int(),
      next_probe_at: nullable(ref('Time')),
      last_error: nullable(str()),
      pending: int(),
      dropped: int(),
      secret: str('`whsec_…`: only in the answer that made it.'),
    },
    { optional: ['secret'] },
  ),
  Delivery: object(
    {
      id: ref('Id'),
      webhook_id: nullable(described(ref('Id'), "null: to the task's own `webhook` URL.")),
      message_id: str(),
      event_type: oneOfValues([...WEBHOOK_EVENTS, 'webhook.disabled']),
      task_id: nullable(ref('Id')),
      schedule_id: ref('Id'),
      attempt: int(),
      status_code: nullable(int()),
      error: nullable(str()),
      duration_ms: nullable(int()),
      state: oneOfValues(['pending', 'delivered', 'failed', 'dropped']),
      created_at: ref('Time'),
      next_attempt_at: nullable(ref('Time')),
    },
    { optional: ['schedule_id'] },
  ),
  Trigger: object(
    {
      id: ref('Id'),
      code_id: ref('Id'),
      code_name: str(),
      url: str('With `?secret=` only in the answer that made it.'),
      hmac_header: nullable(str()),
      hmac_prefix: str(),
      hmac_encoding: oneOfValues(['hex', 'base64']),
      cluster: str(),
      created_at: ref('Time'),
      secret: str('Only in the answer that made it.'),
    },
    { optional: ['secret'] },
  ),
  LogDrain: object(
    {
      id: ref('Id'),
      url: str(),
      code_name: nullable(str()),
      delivered_lines: int(),
      dropped_lines: int(),
      failures: int(),
      retry_at: nullable(ref('Time')),
      last_error: nullable(str()),
      created_at: ref('Time'),
      updated_at: ref('Time'),
      secret: str("An `https` drain's `whsec_…`, only in the answer that made it."),
    },
    { optional: ['secret'] },
  ),
  Upload: object(
    {
      id: ref('Id'),
      msg: str('`Upload successful.`'),
      rev: int(),
      image: str('`…@sha256:<digest>` in the platform registry; with a zip, the image it runs on.'),
      zip_digest: nullable(str('With a zip package: its `sha256:<hex>`.')),
    },
    { optional: ['rev', 'image', 'zip_digest'] },
  ),
  InvokeResult: object({
    id: ref('Id'),
    status: ref('FinalTaskStatus'),
    msg: str(),
    duration: int('Milliseconds.'),
    output: str(),
    truncated: bool(),
  }),
  /** One task of `POST tasks` (and, without `code_name` and `priority`, of an invoke). */
  TaskSpec: fields(
    {
      code_name: str(),
      payload: str(),
      priority: num('0-2; another number: the code default.'),
      timeout: num(),
      delay: num(),
      cluster: str(),
      label: str(),
      webhook: str(),
    },
    ['code_name'],
  ),
  ScheduleSpec: fields({
    code_name: str(),
    payload: str(),
    start_at: str('RFC3339.'),
    run_every: num(),
    end_at: str(),
    run_times: num(),
    cron: str(),
    timezone: str(),
    priority: num(),
    timeout: num(),
    delay: num(),
    task_delay: num(),
    cluster: str(),
    label: str(),
  }),
  CodeSpec: fields(
    {
      name: str(),
      image: str(),
      command: str(),
      config: { type: ['string', 'object'] },
      env_vars: nullable({ type: 'object', additionalProperties: { type: 'string' } }),
      max_concurrency: num(),
      retries: num(),
      retries_delay: num(),
      default_priority: num(),
      cpus: num(),
      memory: num(),
      hot: { type: ['object', 'boolean', 'null'] },
    },
    ['name'],
  ),
  WebhookSpec: fields({
    url: str(),
    events: arrayOf(ref('WebhookEvent')),
    code_name: nullable(str()),
    enabled: bool(),
    description: str(),
  }),
  LogDrainSpec: fields({ url: str(), code_name: nullable(str()) }),
};
