/**
 * Kiln's resources as the API sends them (IronWorker's field names), and the options the client
 * takes (camelCase, mapped to the API's names by the client).
 */

/** IronWorker's task statuses. */
export type TaskStatus =
  'queued' | 'preparing' | 'running' | 'complete' | 'error' | 'cancelled' | 'killed' | 'timeout';

/** The statuses a task never leaves. */
export type FinalTaskStatus = Extract<
  TaskStatus,
  'complete' | 'error' | 'cancelled' | 'killed' | 'timeout'
>;

export const FINAL_TASK_STATUSES: readonly FinalTaskStatus[] = [
  'complete',
  'error',
  'cancelled',
  'killed',
  'timeout',
];

export function isFinalStatus(status: TaskStatus): status is FinalTaskStatus {
  return (FINAL_TASK_STATUSES as readonly string[]).includes(status);
}

/** Unset times are `0001-01-01T00:00:00Z`. */
export type Timestamp = string;

export interface Task {
  id: string;
  project_id: string;
  code_id: string;
  code_history_id: string;
  code_name: string;
  /** The code revision the task runs, as a string (IronWorker's type). */
  code_rev: string;
  status: TaskStatus;
  priority: number;
  payload: string;
  timeout: number;
  delay: number;
  cluster: string;
  label: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  start_time: Timestamp;
  end_time: Timestamp;
  /** Run time in ms. */
  duration: number;
  run_times: number;
  percent: number;
  /** Why it failed; empty on success. */
  msg: string;
  log_size: number;
  retry_count: number;
  original_task_id?: string;
  retry_task_id?: string;
  schedule_id?: string;
  /** The task's own `webhook` URL, when it was queued with one. */
  webhook?: string;
}

/** What `tasks.create` answers: the new task's id. */
export interface QueuedTask {
  id: string;
}

export interface TaskOptions {
  /** 0 (default, or the code's default priority), 1 or 2: higher runs first when workers are busy. */
  priority?: 0 | 1 | 2;
  /** Seconds before the task is killed (`timeout` status). Default 3600. */
  timeout?: number;
  /** Seconds to wait before the task may run. Default 0, at most 604800. */
  delay?: number;
  /** Only workers of this cluster run it. Default `default`. */
  cluster?: string;
  /** Free-form label, filterable in `tasks.list`. */
  label?: string;
  /**
   * URL Kiln POSTs to once, when this task ends (`task.complete`, `task.error`, `task.timeout`,
   * `task.killed` or `task.cancelled`), signed with the project's task secret
   * (`webhooks.taskSecret()`; check it with `verifyWebhook`). Automatic retries keep it.
   * Default: none.
   */
  webhook?: string;
}

/** One task of `tasks.createMany`. */
export interface NewTask extends TaskOptions {
  codeName: string;
  /** A string is sent as is; anything else as JSON. Default `""`. */
  payload?: unknown;
}

export interface TaskFilter {
  /** Only tasks with one of these statuses (default: any). */
  status?: TaskStatus | TaskStatus[];
  codeName?: string;
  label?: string;
  cluster?: string;
  /** Created at or after. */
  from?: Date;
  /** Created at or before. */
  to?: Date;
  /** Tasks fetched per request, 1-100. Default 100. */
  perPage?: number;
}

/** One page of `tasks.page`: `next_cursor` continues after it; null at the end. */
export interface TaskPage {
  tasks: Task[];
  next_cursor: string | null;
}

export interface PageOptions extends TaskFilter {
  /** A `next_cursor` of the previous page; omit for the first. */
  cursor?: string;
  /**
   * A task id (finds that task), or text looked for in the payloads, case-insensitively. A page
   * of a search reads a bounded number of tasks: it may hold fewer matches than `perPage` (even
   * none) and still have a `next_cursor`.
   */
  q?: string;
}

/** Which tasks `tasks.cancelMany` and `tasks.retryMany` are for: by id, or every task matching. */
export type TaskSelection = { ids: string[] } | { filter: Omit<TaskFilter, 'perPage'> };

export interface BulkCancelResult {
  cancelled: number;
  /** Ids given that are not the project's tasks. */
  notFound: number;
}

export interface BulkRetryResult {
  /** The new tasks, each with the task it retries. */
  tasks: { id: string; original_task_id: string }[];
  /** Ids given that are not the project's tasks. */
  notFound: number;
}

/** `tasks.stats`: the project's tasks over a window, and its queues now. */
export interface ProjectStats {
  start: Timestamp;
  end: Timestamp;
  bucket_seconds: number;
  /** Codes with tasks created in the window: counts by status. */
  codes: ({ code_name: string } & Record<TaskStatus, number>)[];
  /** Tasks created in each bucket that ended so, oldest bucket first. */
  series: { start: Timestamp; complete: number; error: number; timeout: number; killed: number }[];
  /** Clusters with tasks queued or running now. */
  clusters: {
    cluster: string;
    queued: number;
    oldest_queued_at: Timestamp | null;
    oldest_queued_seconds: number;
    running: number;
  }[];
  /** Tasks running now (preparing ones too). */
  running: number;
}

export interface WaitOptions {
  /** Give up (with a `KilnTimeoutError`) after this many ms. Default: wait for ever. */
  timeoutMs?: number;
  /** Stops waiting (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Longest pause between two status reads, ms. Default 1000 (the first is 100). */
  maxIntervalMs?: number;
}

export interface FollowOptions {
  /** Stops following. */
  signal?: AbortSignal;
  /** Reconnections tried when the stream breaks before the task ended. Default 5. */
  reconnects?: number;
}

/** What a followed log delivers: output as printed, then the final status once. */
export type LogEvent = { type: 'output'; text: string } | { type: 'end'; status: FinalTaskStatus };

export interface RunResult {
  /** The task in its final status: check `task.status` (`complete` is success). */
  task: Task;
  /** Its STDOUT (IronWorker's `outlog`). */
  output: string;
}

/** What `codes.invoke` takes: a task's options but its priority (an invoke always runs at 2). */
export interface InvokeOptions extends Omit<TaskOptions, 'priority'> {
  /**
   * Seconds Kiln waits for the task, 1-300 (`LIMITS.invokeWait`). Default 30
   * (`INVOKE_WAIT_DEFAULT`). Past it the call rejects with a `KilnTimeoutError` naming the task,
   * which goes on.
   */
  wait?: number;
  /** Stops waiting (rejects with the signal's reason); the task goes on. */
  signal?: AbortSignal;
}

/** What `codes.invoke` resolves with once the task has ended, however it ended. */
export interface InvokeResult {
  id: string;
  /** Check it: `complete` is success. */
  status: FinalTaskStatus;
  /** Why it failed; empty on success. */
  msg: string;
  /** Run time in ms. */
  duration: number;
  /** The task's log (STDOUT and STDERR as printed), up to the server's cap (1 MiB by default). */
  output: string;
  /** Whether the log was longer than `output`. */
  truncated: boolean;
}

export interface Code {
  id: string;
  project_id: string;
  name: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  rev: number;
  latest_history_id: string;
  latest_change: Timestamp;
  image: string;
  command: string;
  config: string;
  env_vars: Record<string, string>;
  /** -1 while the code's queue is paused; absent = unlimited. */
  max_concurrency?: number;
  retries: number;
  retries_delay: number;
  priority: number;
  default_priority: number;
  /** CPUs its tasks may use; null: the server's default. */
  cpus: number | null;
  /** Memory limit of its tasks, MB; null: the server's default. */
  memory: number | null;
  /** Hot mode (Kiln's docs/hot.md); null: cold, a container per task. */
  hot: HotSettings | null;
}

/** A hot code's pool settings; each field has a default on the server. */
export interface HotSettings {
  /** Seconds a warm container waits for its next task before it stops. Default 30. */
  idle_timeout: number;
  /** Tasks one container runs before it is replaced. Default 1000. */
  max_tasks: number;
  /** Warm containers of this code on one worker. Default 2. */
  max_containers: number;
}

export interface CodeOptions {
  /** Command run instead of the image's default. */
  command?: string;
  /** Written to `CONFIG_FILE` in the container; objects are sent as JSON. */
  config?: string | Record<string, unknown>;
  envVars?: Record<string, string>;
  /** Tasks of this code running at once across all workers. Default unlimited. */
  maxConcurrency?: number;
  /** Automatic retries of a failed task, 0-10. Default 0. */
  retries?: number;
  /** Seconds before an automatic retry. Default 60. */
  retriesDelay?: number;
  /** Priority of tasks queued without one. Default 0. */
  defaultPriority?: 0 | 1 | 2;
  /** CPUs its tasks may use, e.g. 0.5, up to the server's maximum. Default the server's (1). */
  cpus?: number;
  /** Memory limit of its tasks, MB, up to the server's maximum. Default the server's (512). */
  memory?: number;
  /**
   * Hot mode: containers stay up and take task after task (the image must speak the hot
   * contract, e.g. with `@kiln/fdk`). `{}` takes every default; absent or null: cold.
   */
  hot?: Partial<HotSettings> | null;
}

export interface NewCode extends CodeOptions {
  name: string;
  /** Docker image reference, e.g. `repo/name:tag`. */
  image: string;
}

export interface RegisteredCode {
  id: string;
  msg: string;
}

export interface UploadProgress {
  sent: number;
  total: number;
}

export interface UploadOptions {
  /**
   * The code: created with the defaults if missing, else a new revision with this image and its
   * other settings unchanged.
   */
  name: string;
  /** A zip package's image (a tarball brings its own). Default: `stack`'s. */
  image?: string;
  /** A zip package's stack (`GET /2/stacks`) when no `image`. Default: the server's first. */
  stack?: string;
  /** What a zip package runs among its files, e.g. `node hello.js` (required for a zip). */
  command?: string;
  /** Called as each piece of the file is sent, `sent` growing to `total` (bytes). Default none. */
  onProgress?: (progress: UploadProgress) => void;
  /** Stops the upload. */
  signal?: AbortSignal;
}

export interface UploadedCode {
  id: string;
  msg: string;
  rev: number;
  /** Where the image now lives: `…@sha256:…` (a zip package: the image it runs on). */
  image: string;
  /** A zip package's digest, `sha256:<hex>`. */
  zip_digest?: string;
}

export type ScheduleStatus = 'scheduled' | 'complete' | 'cancelled';

export interface Schedule {
  id: string;
  project_id: string;
  code_name: string;
  payload: string;
  status: ScheduleStatus;
  msg: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  start_at: Timestamp;
  end_at: Timestamp;
  next_start: Timestamp;
  last_run_time: Timestamp;
  run_every: number;
  run_times: number;
  run_count: number;
  error_count: number;
  priority: number;
  timeout: number;
  delay: number;
  task_delay: number;
  cluster: string;
  label: string;
  /** Always 0 (IronWorker's field; a code's own `max_concurrency` applies). */
  max_concurrency: number;
  cron?: string;
  timezone?: string;
}

export interface ScheduleOptions extends Omit<TaskOptions, 'webhook' | 'delay'> {
  /** Seconds between runs, ≥ 60 (IronWorker). Either this or `cron`. */
  runEvery?: number;
  /** Cron expression, 5 fields (Kiln); a seconds field is refused. */
  cron?: string;
  /** IANA zone of `cron`. Default `UTC`. */
  timezone?: string;
  /** First run. Default now. */
  startAt?: Date | string;
  /** No runs after this. */
  endAt?: Date | string;
  /** Stop after this many runs; 0 (default) = unlimited. */
  runTimes?: number;
  /** Seconds before the first run. */
  delay?: number;
  /** Delay of each task it queues, seconds. */
  taskDelay?: number;
}

export interface QueuedSchedule {
  id: string;
}

export const WEBHOOK_EVENTS = [
  'task.queued',
  'task.running',
  'task.complete',
  'task.error',
  'task.timeout',
  'task.killed',
  'task.cancelled',
  'schedule.complete',
] as const;

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** A webhook subscription as Kiln lists it (its signing secret is shown only at creation). */
export interface Webhook {
  id: string;
  url: string;
  events: WebhookEvent[];
  /** Only events of this code's tasks and schedules; null = every code. */
  code_name: string | null;
  enabled: boolean;
  /**
   * Why Kiln switched it off (the endpoint answered 410, or failed for the whole retry window);
   * null otherwise.
   */
  disabled_reason: string | null;
  description: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  /**
   * The endpoint's circuit: `closed` (deliveries flow), `open` (parked after failing: deliveries
   * wait, one probe goes out on the retry schedule, and the backlog resumes when it answers) or
   * `disabled`.
   */
  circuit: 'closed' | 'open' | 'disabled';
  /** Failures in a row since a delivery last got through. */
  failures: number;
  /** When an open circuit's next probe goes out; null otherwise. */
  next_probe_at: Timestamp | null;
  last_error: string | null;
  /** Deliveries waiting to go out. */
  pending: number;
  /** Deliveries dropped because more than the server's cap were pending. */
  dropped: number;
}

/** What `webhooks.create` answers: the subscription and, this once, its signing secret. */
export interface CreatedWebhook extends Webhook {
  /** `whsec_…`: verifies the deliveries (`verifyWebhook`). Not shown again; `rotateSecret` makes a new one. */
  secret: string;
}

export interface NewWebhook {
  /** http or https; private and loopback addresses are refused unless the server allows them. */
  url: string;
  /** Default: every event (`WEBHOOK_EVENTS`). */
  events?: WebhookEvent[];
  /** Only tasks and schedules of this code. Default `null`: every code. */
  codeName?: string | null;
  /** Default true. */
  enabled?: boolean;
  /** Default `""`. */
  description?: string;
}

/** Fields to change; the others stay. `codeName: null` widens it to every code. */
export type WebhookChanges = Partial<NewWebhook>;

/** What `webhooks.rotateSecret` answers. */
export interface RotatedSecret {
  /** The new `whsec_…` secret; the old one keeps signing too for KILN_WEBHOOK_SECRET_OVERLAP_HOURS (24). */
  secret: string;
  msg: string;
}

/** `dropped`: beyond the server's cap of pending deliveries per endpoint, the oldest are dropped. */
export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'dropped';

/** One message to one endpoint, in the delivery log (`webhooks.deliveries`). */
export interface WebhookDelivery {
  id: string;
  /** The subscription's id; null for a delivery to a task's own `webhook` URL. */
  webhook_id: string | null;
  /** The `webhook-id` header: the same on every retry and redelivery. */
  message_id: string;
  event_type: WebhookEvent;
  task_id: string | null;
  /** For `schedule.complete`. */
  schedule_id?: string;
  /** Attempts so far. */
  attempt: number;
  /** The last attempt's HTTP status; null when no answer came. */
  status_code: number | null;
  /** Why the last attempt failed; null when it did not. */
  error: string | null;
  duration_ms: number | null;
  state: DeliveryState;
  created_at: Timestamp;
  /** When the next attempt is due; null once delivered or failed. */
  next_attempt_at: Timestamp | null;
}

export interface DeliveryFilter {
  /** Deliveries fetched per request, 1-100. Default 100. */
  perPage?: number;
}

/** `data` of a `task.*` event. */
export interface TaskEventData {
  task_id: string;
  project_id: string;
  code_id: string;
  code_name: string;
  status: TaskStatus;
  attempt: number;
  retry_count: number;
  original_task_id: string | null;
  schedule_id: string | null;
  label: string;
  created_at: Timestamp;
  start_time: Timestamp;
  end_time: Timestamp;
  msg: string;
}

/** `data` of a `schedule.complete` event. */
export interface ScheduleEventData {
  schedule_id: string;
  project_id: string;
  code_name: string;
  status: ScheduleStatus;
  run_count: number;
  msg: string;
  created_at: Timestamp;
  last_run_time: Timestamp;
}

/** The body of a webhook request: a thin event (fetch the task or schedule for more). */
export type WebhookMessage =
  | {
      type: Exclude<WebhookEvent, 'schedule.complete'>;
      /** When the event happened (RFC 3339). */
      timestamp: Timestamp;
      data: TaskEventData;
    }
  | { type: 'schedule.complete'; timestamp: Timestamp; data: ScheduleEventData };

/** A per-code trigger URL as listed: `url` without its secret. */
export interface Trigger {
  id: string;
  code_id: string;
  code_name: string;
  url: string;
  /** The header holding an HMAC of the body; null = no HMAC check. */
  hmac_header: string | null;
  hmac_prefix: string;
  hmac_encoding: 'hex' | 'base64';
  /** Cluster of the tasks it queues (`default`, or one granted to the project). */
  cluster: string;
  created_at: Timestamp;
}

/** What `triggers.create` answers: `url` with `?secret=`, and the secret; shown this once. */
export interface CreatedTrigger extends Trigger {
  secret: string;
}

export interface TriggerOptions {
  /** Also require an HMAC-SHA256 of the body (keyed with `hmacSecret`) in this header. Default none. */
  hmacHeader?: string;
  /** The HMAC key; given with `hmacHeader`. */
  hmacSecret?: string;
  /** What precedes the HMAC in the header, e.g. `sha256=` (GitHub). Default `""`. */
  hmacPrefix?: string;
  /** Default `hex`. */
  hmacEncoding?: 'hex' | 'base64';
  /** Cluster of the tasks it queues; default `default`, any other must be granted to the project. */
  cluster?: string;
}

/** A project's login to a private registry, as listed (never its password). */
export interface RegistryCredential {
  /** The registry host, e.g. `registry.example.com:5000` or `docker.io`. */
  serveraddress: string;
  username: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface NewRegistryCredential {
  /**
   * The registry: a host (`registry.example.com:5000`) or a URL, which Kiln reduces to its host
   * (`https://index.docker.io/v1/` → `docker.io`).
   */
  serverAddress: string;
  username: string;
  password: string;
  email?: string;
}

/**
 * What a project token may do, each role holding the one before it: `read` (every read, logs
 * included), `queue` (also create, cancel and retry tasks, set progress), `manage` (everything in
 * the project). The server reads this list too.
 */
export const TOKEN_ROLES = ['read', 'queue', 'manage'] as const;

export type TokenRole = (typeof TOKEN_ROLES)[number];

/** An API token as listed: never its secret. */
export interface ApiToken {
  id: string;
  name: string;
  role: TokenRole;
  created_at: Timestamp;
  /** Null until first used; updated about once a minute at most. */
  last_used_at: Timestamp | null;
  /** Null: never expires. */
  expires_at: Timestamp | null;
}

/** What `tokens.create` answers: the token's secret, shown this once. */
export interface CreatedToken extends ApiToken {
  msg: string;
  project_id: string;
  /** The secret (`kiln_…`): send it as `Authorization: OAuth <token>`. */
  token: string;
}

export interface NewToken {
  /** Default `""`. */
  name?: string;
  /** Default `manage`. */
  role?: TokenRole;
  /** When it stops working (a Date or RFC 3339 text, in the future). Default never. */
  expiresAt?: Date | string;
}

/** What most actions answer. */
export interface Message {
  msg: string;
}

/** A log drain as Kiln lists it (an HTTPS drain's signing secret is shown only at creation). */
export interface LogDrain {
  id: string;
  /** `https://…`, `syslog+tcp://host:port` or `syslog+tls://host:port`. */
  url: string;
  /** Only this code's tasks; null = every code of the project. */
  code_name: string | null;
  /** Lines the receiver accepted. */
  delivered_lines: number;
  /** Lines skipped because the receiver did not take them within the server's buffer. */
  dropped_lines: number;
  /** Failed attempts in a row. */
  failures: number;
  /** When a failing drain is tried next; null otherwise. */
  retry_at: Timestamp | null;
  last_error: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** What `logDrains.create` answers: the drain and, for an `https` one, its signing secret. */
export interface CreatedLogDrain extends LogDrain {
  /** `whsec_…` (https drains only): the batches are signed like webhooks. Not shown again. */
  secret?: string;
}

export interface NewLogDrain {
  /** `https://…`, `syslog+tcp://host:port` or `syslog+tls://host:port`. */
  url: string;
  /** Only this code's tasks. Default `null`: every code. */
  codeName?: string | null;
}

export type LogDrainChanges = Partial<NewLogDrain>;
