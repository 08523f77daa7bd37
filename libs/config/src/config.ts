import { LIMITS } from '@kiln/client';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AllowEntry,
  HostPattern,
  parseAllowList,
  parseCidr,
  parseCommaList,
  parseHostPatterns,
} from '@kiln/common';

/**
 * Kiln's whole configuration, read from the environment in one place and validated at start-up:
 * a process with a bad variable refuses to start with a message naming it. Every default is the
 * value documented in `.env.example`.
 */
export interface KilnConfig {
  /** Postgres connection URL. `DATABASE_URL`, required. */
  databaseUrl: string;
  /**
   * How the pooler behind `DATABASE_URL` hands out server connections. `transaction` (PgBouncer's
   * transaction pooling): Kiln prepares no named statements there and keeps nothing in a session
   * (docs/ha.md). `DATABASE_POOL_MODE`, `session` (default: a plain Postgres) or `transaction`.
   */
  databasePoolMode: 'session' | 'transaction';
  /**
   * Postgres itself, for what needs a session of its own: the webhook dispatcher's LISTEN and
   * the migrations' advisory lock. `DATABASE_DIRECT_URL`, required when `DATABASE_POOL_MODE` is
   * `transaction`, else default `DATABASE_URL`.
   */
  databaseDirectUrl: string;
  /**
   * Connections each process's pool opens to `DATABASE_URL` at most (a request waits up to 5 s
   * for one, then answers 503). Times the number of processes, this is what Postgres (or the
   * pooler in front of it) must accept (docs/scaling.md). `DATABASE_POOL_MAX`, default 20.
   */
  databasePoolMax: number;
  /** Redis connection URL. `REDIS_URL`, required. */
  redisUrl: string;
  /**
   * Redis Sentinel: the sentinels to ask where the primary is, instead of `REDIS_URL`'s host (whose
   * user, password, database and TLS still apply). `REDIS_SENTINELS`, comma-separated `host:port`,
   * default none (no Sentinel).
   */
  redisSentinels: { host: string; port: number }[];
  /** The primary's name as the sentinels know it. `REDIS_SENTINEL_NAME`, required with `REDIS_SENTINELS`. */
  redisSentinelName: string | undefined;
  /** Password of the sentinels themselves, when they ask for one. `REDIS_SENTINEL_PASSWORD`, default none. */
  redisSentinelPassword: string | undefined;
  /** Prefix of every Bull key in Redis, so several Kiln installs can share one Redis. `KILN_QUEUE_PREFIX`, default `kiln`. */
  queuePrefix: string;
  /** Unix socket of the Docker engine. `DOCKER_SOCKET`, default `/var/run/docker.sock`. */
  dockerSocket: string;
  api: {
    /** `KILN_API_HOST`, default `127.0.0.1`. */
    host: string;
    /** `KILN_API_PORT`, default 8080. */
    port: number;
    /**
     * Largest JSON request body in bytes, on every route but the bulk creates (`POST tasks` and
     * `POST schedules`: 100 × (2 × the payload cap + 4 KiB)) and uploads (`KILN_UPLOAD_MAX_BYTES`).
     * `KILN_MAX_BODY_BYTES`, default 1 MiB.
     */
    maxBodyBytes: number;
    /** Time for a request's headers to arrive whole (Node's `headersTimeout`). `KILN_HTTP_HEADERS_TIMEOUT_SECONDS`, default 20. */
    headersTimeoutSeconds: number;
    /** Longest wait for the next byte of a (non-upload) request body. `KILN_HTTP_BODY_IDLE_SECONDS`, default 10. */
    bodyIdleSeconds: number;
    /** Time for a whole (non-upload) request body. `KILN_HTTP_BODY_TIMEOUT_SECONDS`, default 60. */
    bodyTimeoutSeconds: number;
    /**
     * Addresses of the proxies in front of the API (load balancers), whose `X-Forwarded-For` tells
     * a client's address: addresses, CIDRs, or `loopback`, `linklocal`, `uniquelocal`.
     * `KILN_TRUSTED_PROXIES`, comma-separated, default none (the peer's address is the client's).
     */
    trustedProxies: string[];
    /**
     * Time for a whole request that uploads an image, and for any request as a backstop (Node's
     * `requestTimeout`). `KILN_UPLOAD_TIMEOUT_SECONDS`, default 3600.
     */
    uploadTimeoutSeconds: number;
    /** Longest wait for the next byte of an upload. `KILN_UPLOAD_IDLE_SECONDS`, default 60. */
    uploadIdleSeconds: number;
    /** `GET …/log?follow=1` streams one API process holds at once, all projects together. `KILN_API_MAX_FOLLOWERS`, default 1000. */
    maxFollowers: number;
    /**
     * `POST …/codes/{name}/invoke` calls one API process holds waiting for their task at once, all
     * projects together. `KILN_API_MAX_INVOKES`, default 1000.
     */
    maxInvokes: number;
    /**
     * Bytes of a task's log an invoke answers with (the head; `truncated` says when there was
     * more). `KILN_INVOKE_OUTPUT_MAX_BYTES`, default 1 MiB.
     */
    invokeOutputMaxBytes: number;
    /**
     * What a SIGTERM leaves the API to drain: for this long it keeps serving while `/healthz`
     * answers 503 `draining` (so a load balancer stops sending it requests) and every answer
     * closes its connection; then it ends its live-log streams (clients resume elsewhere with
     * `Last-Event-ID`), stops listening and finishes the requests it holds.
     * `KILN_API_DRAIN_SECONDS`, default 0.
     */
    drainSeconds: number;
    /**
     * How long a dashboard session (`POST /ui/session`) lasts after sign-in; the token it was made
     * from is checked again on every request all the same. `KILN_UI_SESSION_HOURS`, default 12.
     */
    uiSessionHours: number;
  };
  /** Request rates, shared by every API replica (counted in Redis). */
  rateLimits: {
    /** Requests per second one token may make, sustained (0 = no limit). `KILN_RATE_LIMIT_PER_SECOND`, default 1000. */
    tokenPerSecond: number;
    /** Requests one token may make at once above that rate. `KILN_RATE_LIMIT_BURST`, default 2000. */
    tokenBurst: number;
    /**
     * Failed authentications from one client address within `authFailureWindowSeconds` after
     * which that address is refused (429) for `authBlockSeconds` (0 = no limit).
     * `KILN_AUTH_FAILURE_LIMIT`, default 30.
     */
    authFailures: number;
    /** `KILN_AUTH_FAILURE_WINDOW_SECONDS`, default 60. */
    authFailureWindowSeconds: number;
    /** `KILN_AUTH_BLOCK_SECONDS`, default 300. */
    authBlockSeconds: number;
  };
  /** Token that may create projects and tokens and act on any project. `KILN_ADMIN_TOKEN`; admin routes are off when unset. */
  adminToken: string | undefined;
  tasks: {
    /** `KILN_TASK_TIMEOUT_DEFAULT` seconds, default 3600 (IronWorker's). */
    defaultTimeout: number;
    /** `KILN_TASK_TIMEOUT_MAX` seconds, default 3600. */
    maxTimeout: number;
    /** Tasks of one project running at once in a cluster unless the project says otherwise; 0: no limit. */
    projectMaxRunning: number;
    /** `KILN_PAYLOAD_MAX_BYTES`, default 65536 (IronWorker's 64 KB). */
    maxPayloadBytes: number;
    /** Per-task log cap in bytes; head and tail are kept. `KILN_LOG_MAX_BYTES`, default 8 MiB. */
    maxLogBytes: number;
  };
  worker: {
    /** Stable id of this worker; its containers carry it as `kiln.worker`. `KILN_WORKER_ID`, default `<hostname>-<cluster>`. */
    id: string;
    /** Cluster whose queue this worker consumes. `KILN_WORKER_CLUSTER`, default `default`. */
    cluster: string;
    /** Tasks run at once. `KILN_WORKER_CONCURRENCY`, default 2. */
    concurrency: number;
    /** Port of the worker's `/healthz` (0 = no health server). `KILN_WORKER_HEALTH_PORT`, default 0. */
    healthPort: number;
    /** Seconds between heartbeats of running tasks. `KILN_WORKER_HEARTBEAT_SECONDS`, default 10. */
    heartbeatSeconds: number;
    /**
     * How long a SIGTERM lets the tasks this worker runs finish (it takes no new ones meanwhile);
     * those still running then are killed and handed back to the queue, to run again elsewhere.
     * `KILN_WORKER_SHUTDOWN_GRACE_SECONDS`, default 25.
     */
    shutdownGraceSeconds: number;
    /**
     * Local directory where the worker keeps the outcomes Postgres has not taken yet (during an
     * outage), one subdirectory per worker id, so that a restarted worker records them. Must be
     * on a disk that outlives the process. `KILN_WORKER_JOURNAL_DIR`, default `./.kiln/journal`.
     */
    journalDir: string;
  };
  container: {
    /**
     * Docker network mode of task containers. `KILN_CONTAINER_NETWORK`, default `none`. `host`
     * (the worker host's own network: its loopback services, Postgres, Redis, the registry, the
     * engine's neighbours) is refused unless `KILN_UNSAFE_ALLOW_HOST_NETWORK` is also set; a worker
     * that has it logs a warning at start.
     */
    network: string;
    /** `KILN_UNSAFE_ALLOW_HOST_NETWORK` (`1`/`true`/`yes`), default off: lets `network` be `host`. */
    unsafeHostNetwork: boolean;
    /**
     * Memory limit in MiB, unless a code asks for its own `memory`. Everything the task writes to
     * its tmpfs mounts (`TASK_DIR`, `/tmp`) counts in it. `KILN_CONTAINER_MEMORY_MB`, default 512.
     */
    memoryMb: number;
    /**
     * The most `memory` a code may ask for, MiB. `KILN_CONTAINER_MEMORY_MB_MAX`, default 2048 (or
     * `KILN_CONTAINER_MEMORY_MB` when that is larger).
     */
    memoryMbMax: number;
    /**
     * CPUs a task may use (Docker `NanoCpus`: a CFS quota, so `1` is one core's time however many
     * threads run), unless a code asks for its own `cpus`. `KILN_CONTAINER_CPUS`, default 1.
     */
    cpus: number;
    /**
     * The most `cpus` a code may ask for. `KILN_CONTAINER_CPUS_MAX`, default 2 (or
     * `KILN_CONTAINER_CPUS` when that is larger). A worker gives a task at most its engine's CPUs.
     */
    cpusMax: number;
    /** Open files per process (`nofile` ulimit, soft and hard). `KILN_CONTAINER_NOFILE`, default 4096. */
    nofile: number;
    /** Size limit of the task's `/tmp`, a tmpfs (it counts against the memory limit). `KILN_CONTAINER_TMP_MB`, default 64. */
    tmpMb: number;
    /**
     * 0 (default): the task's root filesystem is read-only; it writes to `TASK_DIR` and `/tmp`,
     * both size-capped tmpfs. N: the root is writable, capped at N MiB by the engine's storage
     * driver (`StorageOpt size`); a worker whose engine cannot cap it (overlay2 needs xfs mounted
     * with `pquota`) refuses to start. `KILN_CONTAINER_WRITABLE_ROOT_MB`.
     */
    writableRootMb: number;
    /** Process limit. `KILN_CONTAINER_PIDS_LIMIT`, default 256. */
    pidsLimit: number;
    /** User the task runs as (`uid:gid`; empty = the image's user). `KILN_CONTAINER_USER`, default `65534:65534`. */
    user: string;
    /**
     * How the payload and config files reach the container. `bind` (default): the worker writes
     * them to a directory of its own per task, under `taskFilesDir`, mounted read-only at
     * `/mnt/kiln`; the engine must see the worker's filesystem. `archive`: copied into the
     * container with Docker's archive API (slower: about 80 ms of dockerd CPU per task), for an
     * engine on another host. `KILN_CONTRACT_DELIVERY`.
     */
    contractDelivery: 'bind' | 'archive';
    /**
     * Host directory of the per-task file directories (`bind` delivery). `KILN_TASK_FILES_DIR`,
     * default `/dev/shm/kiln-task-files` (a tmpfs: the files live for one task, and a disk's
     * journal would make their creation and removal wait behind Postgres's fsyncs), or
     * `<os tmpdir>/kiln-task-files` where there is no `/dev/shm`.
     */
    taskFilesDir: string;
    /** Size limit of `TASK_DIR`, a tmpfs (it counts against the memory limit). `KILN_TASK_DIR_MB`, default 256. */
    taskDirMb: number;
    /** The most `hot.max_containers` a code may ask for. `KILN_HOT_CODE_MAX_CONTAINERS`, default 8. */
    hotCodeMaxContainers: number;
  };
  /** Hot containers (docs/hot.md, "Settings"). */
  hot: {
    /** Warm containers on one worker, all codes. `KILN_HOT_MAX_CONTAINERS`, default 20. */
    maxContainers: number;
    /** How long a new hot container has to listen on its socket. `KILN_HOT_READY_SECONDS`, default 10. */
    readySeconds: number;
    /** Below this much available memory (MiB), idle hot containers are stopped. `KILN_HOT_MIN_AVAILABLE_MB`, default 256. */
    minAvailableMb: number;
  };
  scheduler: {
    /** Seconds between reconciler passes (delayed tasks become due on this beat). `KILN_RECONCILE_SECONDS`, default 1. */
    reconcileSeconds: number;
    /** This replica's name in the leader lease. `KILN_SCHEDULER_ID`, default `<hostname>-<pid>`. */
    id: string;
    /** Leader lease length; a dead leader is replaced within it. `KILN_LEADER_LEASE_SECONDS`, default 10. */
    leaseSeconds: number;
    /** A running task whose heartbeat is older than this lost its worker. `KILN_HEARTBEAT_LAPSE_SECONDS`, default 60. */
    heartbeatLapseSeconds: number;
    /**
     * A job a worker claimed this long ago without settling its take lost its worker, and its task
     * is queued again. Workers settle within milliseconds, or retry a take for about a minute while
     * Postgres is away. `KILN_CLAIM_STALE_SECONDS`, default 120.
     */
    claimStaleSeconds: number;
    /** Attempts before a task that keeps losing its worker ends `error`. `KILN_TASK_MAX_ATTEMPTS`, default 3. */
    maxAttempts: number;
    /** Port of the scheduler's `/healthz` and `/metrics` (0 = none). `KILN_SCHEDULER_HEALTH_PORT`, default 0. */
    healthPort: number;
  };
  /**
   * The platform registry, where uploaded images are pushed and workers pull them from.
   * `REGISTRY_URL` (`host:port`, or a URL with `http://`/`https://`; without a scheme, plain HTTP
   * for loopback hosts and HTTPS otherwise); unset = uploads are refused.
   */
  registry: PlatformRegistry | undefined;
  uploads: {
    /** Largest upload, bytes as sent (gzip or not); 413 past it. `KILN_UPLOAD_MAX_BYTES`, default 4 GiB. */
    maxBytes: number;
    /** Largest tarball once un-gzipped. `KILN_UPLOAD_MAX_UNPACKED_BYTES`, default 8 GiB. */
    maxUnpackedBytes: number;
    /** Most un-gzipped bytes per gzip byte before the upload is refused as a gzip bomb. `KILN_UPLOAD_MAX_RATIO`, default 100. */
    maxRatio: number;
    /** Most layers in the image. `KILN_UPLOAD_MAX_LAYERS`, default 127. */
    maxLayers: number;
    /** Most entries in the tarball. `KILN_UPLOAD_MAX_ENTRIES`, default 10000. */
    maxEntries: number;
    /** Where an upload is spooled while it is checked; removed afterwards. `KILN_UPLOAD_SPOOL_DIR`, default `<tmpdir>/kiln-uploads`. */
    spoolDir: string;
  };
  /**
   * Zip code packages (`POST codes` with a zip `file`), checked at upload and again on every
   * worker before they are unpacked into a task's directory.
   */
  /**
   * The operator's stacks (`GET /2/stacks`): an image a zip code package runs on when its upload
   * names the stack (IronWorker's `stack`) and no image; the first is the default for an upload
   * naming neither. `KILN_STACKS`, `name=image,…`, default none (a zip then needs an image).
   */
  stacks: Stack[];
  zips: {
    /** Largest zip, bytes as sent; 413 past it. `KILN_ZIP_MAX_BYTES`, default 256 MiB. */
    maxBytes: number;
    /** Most bytes a zip's entries hold once inflated; 400 past it. `KILN_ZIP_MAX_UNPACKED_BYTES`, default 1 GiB. */
    maxUnpackedBytes: number;
    /** Most entries (files and directories) in a zip. `KILN_ZIP_MAX_ENTRIES`, default 10000. */
    maxEntries: number;
    /** Where a worker keeps the zips it fetched, by digest. `KILN_ZIP_CACHE_DIR`, default `<tmpdir>/kiln-zips`. */
    cacheDir: string;
  };
  /**
   * AES-256-GCM key sealing secrets at rest: registry credentials, webhook signing secrets,
   * trigger HMAC secrets and code `env_vars` (32 bytes, hex or base64). `KILN_CREDENTIALS_KEY`;
   * when unset, registry credentials are refused and the other secrets are stored in plain text.
   */
  credentialsKey: Buffer | undefined;
  /** Former keys, which open what they sealed but seal nothing (key rotation). `KILN_CREDENTIALS_OLD_KEYS`, comma-separated, default none. */
  credentialsOldKeys: Buffer[];
  images: {
    /** A worker removes an image it pulled once unused this long. `KILN_IMAGE_GC_SECONDS`, default 86400 (0 = never). */
    gcSeconds: number;
    /**
     * Largest image a task may run, bytes as the engine stores it (`docker image inspect` Size): a
     * pull whose layers add up to more is stopped, a bigger image ends its task `error`, and an
     * upload whose layers add up to more is refused (413). `KILN_IMAGE_MAX_BYTES`, default 8 GiB.
     */
    maxBytes: number;
    /**
     * How long a task may wait for its image (the registry's answer, then the pull) before it ends
     * `error`: "Image pull timed out after N s". `KILN_PULL_TIMEOUT_SECONDS`, default 600.
     */
    pullTimeoutSeconds: number;
    /**
     * Registry hosts an image reference may name (the platform registry is always allowed):
     * `host`, `host:port`, `*.domain`, `*` (a host without a port), `host:*` (any port).
     * A registry whose host resolves to a loopback, private, link-local or metadata address is
     * refused unless an entry names that host literally (no `*` in its host part).
     * `KILN_IMAGE_REGISTRIES`, comma-separated, default `*:*` (any registry on a public address).
     */
    registries: HostPattern[];
    /**
     * Images the operator shares with every project: name patterns such as `kiln-test/*` (`*`
     * within one path component, `**` across components; a name without a registry host is
     * Docker Hub's, as in Docker). Such images run for any project as the engine has them (pulled
     * when missing). `KILN_SHARED_IMAGES`, comma-separated, default none.
     */
    sharedImages: string[];
  };
  webhooks: {
    /**
     * Private, loopback, link-local … destinations a webhook may still reach: host names, addresses
     * and CIDRs, each optionally with a port. `WEBHOOK_ALLOWED_HOSTS`, comma-separated, default none.
     */
    allowedHosts: AllowEntry[];
    /** Deliveries this process makes at once (0 = none). `KILN_WEBHOOK_CONCURRENCY`, default 64. */
    concurrency: number;
    /**
     * Of those, at most this many for one project, so that a project with a backlog leaves the rest
     * to others. `KILN_WEBHOOK_PROJECT_CONCURRENCY`, default 16.
     */
    projectConcurrency: number;
    /** And at most this many to one endpoint. `KILN_WEBHOOK_ENDPOINT_CONCURRENCY`, default 8. */
    endpointConcurrency: number;
    /**
     * Failures in a row that park an endpoint (open its circuit); a connect time-out, refused
     * connection or DNS failure parks it at once. `KILN_WEBHOOK_CIRCUIT_FAILURES`, default 5.
     */
    circuitFailures: number;
    /**
     * Pending deliveries one endpoint may hold; beyond it the oldest are dropped (state `dropped`)
     * and counted. `KILN_WEBHOOK_MAX_PENDING`, default 10000.
     */
    maxPending: number;
    /** `KILN_WEBHOOK_CONNECT_TIMEOUT_MS`, default 5000. */
    connectTimeoutMs: number;
    /** Whole request, connect to last response byte. `KILN_WEBHOOK_TIMEOUT_MS`, default 15000. */
    timeoutMs: number;
    /**
     * Seconds before each retry of a failed delivery (±10 % jitter); once all are used the delivery
     * is `failed`. `KILN_WEBHOOK_RETRY_SCHEDULE`, default `5,300,1800,7200,18000,36000,36000` (≈ 27 h).
     */
    retrySchedule: number[];
    /** After a secret rotation the old secret also signs for this long. `KILN_WEBHOOK_SECRET_OVERLAP_HOURS`, default 24. */
    secretOverlapHours: number;
    /**
     * Finished deliveries (delivered, failed, dropped) are deleted this many days after their
     * last attempt, by the scheduler's leader ({@link KilnConfig.retention}); a task's deliveries
     * go with the task in any case. `KILN_WEBHOOK_RETENTION_DAYS`, default
     * `KILN_TASK_RETENTION_DAYS`.
     */
    retentionDays: number;
  };
  /** Log drains (docs/operations.md, "Log drains"), shipped by the scheduler's leader. */
  logDrains: {
    /**
     * A drain's buffer: output not accepted by its receiver within this many seconds of being
     * printed is skipped and counted in `kiln_log_drain_dropped_lines_total`.
     * `KILN_LOG_DRAIN_BUFFER_SECONDS`, default 3600.
     */
    bufferSeconds: number;
    /** Longest wait between attempts at a failing drain. `KILN_LOG_DRAIN_RETRY_MAX_SECONDS`, default 30. */
    retryMaxSeconds: number;
  };
  /**
   * History the scheduler's leader deletes (docs/operations.md, "Retention"): finished tasks with
   * their logs and webhook deliveries, and finished deliveries, in small batches.
   */
  retention: {
    /**
     * A finished task (complete, error, cancelled, killed, timeout) is deleted this many days
     * after it ended, unless its project has its own `retention_days`.
     * `KILN_TASK_RETENTION_DAYS`, default 30.
     */
    taskDays: number;
    /** Rows one statement deletes at most. `KILN_RETENTION_BATCH`, default 1000. */
    batch: number;
    /** Pause between two batches, ms, so that the purge never holds Postgres for long. `KILN_RETENTION_PAUSE_MS`, default 100. */
    pauseMs: number;
    /** Seconds between passes once a pass found nothing more to delete. `KILN_RETENTION_INTERVAL_SECONDS`, default 300. */
    intervalSeconds: number;
  };
  /**
   * What one project may hold at once; past it a create is refused with 429 and writes nothing.
   * The defaults are far above what a normal project uses; the admin may set other values per
   * project (`PUT /2/projects/{pid}/quotas`).
   */
  quotas: ProjectQuotas;
  /** `KILN_LOG_LEVEL`: error, warn, log, debug; default log. */
  logLevel: 'error' | 'warn' | 'log' | 'debug';
  /** `KILN_LOG_FORMAT`: json (default, one JSON object a line) or pretty (for a terminal). */
  logFormat: 'json' | 'pretty';
  /** Prometheus metrics (docs/operations.md, "Metrics"). */
  metrics: {
    /** `KILN_METRICS`: 1 (default) counts and serves `/metrics`; 0 turns both off. */
    enabled: boolean;
    /**
     * Whether task metrics carry `project` and `code` labels. `KILN_METRICS_PROJECT_LABELS`,
     * default 1; 0 for very many projects (each pair is a time series).
     */
    projectLabels: boolean;
    /**
     * A token that may read `/metrics` besides the admin token (a scraper needs no admin rights).
     * `KILN_METRICS_TOKEN`, at least 16 characters; default none.
     */
    token: string | undefined;
    /**
     * `KILN_METRICS_PORT`: 0 (default) serves the API's `/metrics` on its own port; N serves it
     * (with `/healthz`) on port N of `KILN_METRICS_HOST` instead, off the public router.
     */
    apiPort: number;
    /** `KILN_METRICS_HOST`, default `127.0.0.1`: where `KILN_METRICS_PORT` listens. */
    apiHost: string;
  };
  /** OpenTelemetry traces (docs/operations.md, "Traces"). */
  tracing: {
    /**
     * `OTEL_EXPORTER_OTLP_ENDPOINT` (OpenTelemetry's own variable): the OTLP/HTTP collector spans
     * are sent to, at `<endpoint>/v1/traces`; unset (default), tracing is off.
     */
    endpoint: string | undefined;
  };
}

/** Per-project limits; see {@link KilnConfig.quotas}. */
export interface ProjectQuotas {
  /** Tasks in status `queued` (delayed ones included). `KILN_QUOTA_QUEUED_TASKS`, default 1000000. */
  queuedTasks: number;
  /** Live schedules (status `scheduled`). `KILN_QUOTA_SCHEDULES`, default 1000. */
  schedules: number;
  /** Webhook subscriptions. `KILN_QUOTA_WEBHOOKS`, default 20. */
  webhooks: number;
  /** Log drains. `KILN_QUOTA_LOG_DRAINS`, default 5. */
  logDrains: number;
  /** Live (unrevoked) trigger URLs of one code. `KILN_QUOTA_TRIGGERS_PER_CODE`, default 20. */
  triggersPerCode: number;
  /** `GET …/log?follow=1` streams open at once, per API process. `KILN_QUOTA_LOG_FOLLOWERS`, default 50. */
  logFollowers: number;
  /** `POST …/codes/{name}/invoke` calls waiting at once, per API process. `KILN_QUOTA_INVOKES`, default 50. */
  invokes: number;
}

/** Each quota's default, and the most it may be set to (by the operator or per project). */
export const QUOTA_DEFAULTS: ProjectQuotas = {
  queuedTasks: 1_000_000,
  schedules: 1000,
  webhooks: 20,
  logDrains: 5,
  triggersPerCode: 20,
  logFollowers: 50,
  invokes: 50,
};
export const QUOTA_MAX = 1_000_000_000;
/** The longest retention, operator-wide or per project: ten years. */
export const MAX_RETENTION_DAYS = 3650;

/** Docker's smallest memory limit, MiB. */
export const MIN_MEMORY_MB = 6;
/** Docker's smallest CPU limit (`NanoCpus` 10,000,000), and a bound no host reaches. */
export const MIN_CPUS = 0.01;
const MAX_CPUS = 1024;

/** One of the operator's stacks: a name for an image zip code packages run on. */
export interface Stack {
  name: string;
  image: string;
}

export interface PlatformRegistry {
  /** `http://host:port` or `https://host[:port]`, no trailing slash. */
  baseUrl: string;
  /** `host[:port]`, as image references name it. */
  host: string;
  /** `KILN_REGISTRY_USERNAME` / `KILN_REGISTRY_PASSWORD`, when the registry wants them. */
  username: string | undefined;
  password: string | undefined;
}

type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * `KILN_LOG_FORMAT` before the whole configuration is read (it may be what fails to load): the
 * format of a process's first lines, `cannot start` among them. Anything but `pretty` is JSON.
 */
export function earlyLogFormat(env: Env = process.env): 'json' | 'pretty' {
  return env.KILN_LOG_FORMAT === 'pretty' ? 'pretty' : 'json';
}

export function loadConfig(env: Env = process.env): KilnConfig {
  const problems: string[] = [];
  const read = new EnvReader(env, problems);
  const cluster = read.name('KILN_WORKER_CLUSTER', 'default');
  const memoryMb = read.int('KILN_CONTAINER_MEMORY_MB', 512, MIN_MEMORY_MB, 1024 * 1024);
  const cpus = read.decimal('KILN_CONTAINER_CPUS', 1, MIN_CPUS, MAX_CPUS);
  const taskRetentionDays = read.int('KILN_TASK_RETENTION_DAYS', 30, 1, MAX_RETENTION_DAYS);
  const databaseUrl = read.url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const databasePoolMode = read.oneOf(
    'DATABASE_POOL_MODE',
    ['session', 'transaction'] as const,
    'session',
  );
  if (databasePoolMode === 'transaction' && read.optional('DATABASE_DIRECT_URL') === undefined) {
    problems.push(
      'DATABASE_DIRECT_URL is required when DATABASE_POOL_MODE=transaction: LISTEN and the ' +
        "migrations' advisory lock need a session of Postgres itself, not of the pooler",
    );
  }
  const config: KilnConfig = {
    databaseUrl,
    databasePoolMode,
    databaseDirectUrl:
      read.optional('DATABASE_DIRECT_URL') === undefined
        ? databaseUrl
        : read.url('DATABASE_DIRECT_URL', ['postgres:', 'postgresql:']),
    databasePoolMax: read.int('DATABASE_POOL_MAX', 20, 1, 10_000),
    redisUrl: read.url('REDIS_URL', ['redis:', 'rediss:']),
    redisSentinels: read.hostPorts('REDIS_SENTINELS'),
    redisSentinelName: read.optional('REDIS_SENTINEL_NAME'),
    redisSentinelPassword: read.optional('REDIS_SENTINEL_PASSWORD'),
    queuePrefix: read.name('KILN_QUEUE_PREFIX', 'kiln'),
    dockerSocket: read.string('DOCKER_SOCKET', '/var/run/docker.sock'),
    api: {
      host: read.string('KILN_API_HOST', '127.0.0.1'),
      port: read.int('KILN_API_PORT', 8080, 0, 65535),
      maxBodyBytes: read.int('KILN_MAX_BODY_BYTES', 1024 * 1024, 1024, 1024 ** 3),
      headersTimeoutSeconds: read.int('KILN_HTTP_HEADERS_TIMEOUT_SECONDS', 20, 1, 3600),
      bodyIdleSeconds: read.int('KILN_HTTP_BODY_IDLE_SECONDS', 10, 1, 3600),
      bodyTimeoutSeconds: read.int('KILN_HTTP_BODY_TIMEOUT_SECONDS', 60, 1, 3600),
      uploadTimeoutSeconds: read.int('KILN_UPLOAD_TIMEOUT_SECONDS', 3600, 1, 7 * 86400),
      uploadIdleSeconds: read.int('KILN_UPLOAD_IDLE_SECONDS', 60, 1, 3600),
      trustedProxies: read.proxies('KILN_TRUSTED_PROXIES'),
      maxFollowers: read.int('KILN_API_MAX_FOLLOWERS', 1000, 0, 1_000_000),
      maxInvokes: read.int('KILN_API_MAX_INVOKES', 1000, 0, 1_000_000),
      invokeOutputMaxBytes: read.int(
        'KILN_INVOKE_OUTPUT_MAX_BYTES',
        1024 * 1024,
        1024,
        64 * 1024 * 1024,
      ),
      drainSeconds: read.int('KILN_API_DRAIN_SECONDS', 0, 0, 3600),
      uiSessionHours: read.int('KILN_UI_SESSION_HOURS', 12, 1, 24 * 30),
    },
    rateLimits: {
      tokenPerSecond: read.int('KILN_RATE_LIMIT_PER_SECOND', 1000, 0, 1_000_000),
      tokenBurst: read.int('KILN_RATE_LIMIT_BURST', 2000, 1, 10_000_000),
      authFailures: read.int('KILN_AUTH_FAILURE_LIMIT', 30, 0, 1_000_000),
      authFailureWindowSeconds: read.int('KILN_AUTH_FAILURE_WINDOW_SECONDS', 60, 1, 86400),
      authBlockSeconds: read.int('KILN_AUTH_BLOCK_SECONDS', 300, 1, 86400),
    },
    adminToken: read.optional('KILN_ADMIN_TOKEN'),
    tasks: {
      defaultTimeout: read.int('KILN_TASK_TIMEOUT_DEFAULT', 3600, 1, 7 * 24 * 3600),
      maxTimeout: read.int('KILN_TASK_TIMEOUT_MAX', 3600, 1, LIMITS.timeout[1]),
      maxPayloadBytes: read.int('KILN_PAYLOAD_MAX_BYTES', 65536, 1, 64 * 1024 * 1024),
      maxLogBytes: read.int('KILN_LOG_MAX_BYTES', 8 * 1024 * 1024, 1024, 1024 ** 3),
      projectMaxRunning: read.int('KILN_PROJECT_MAX_RUNNING', 0, 0, 1_000_000),
    },
    worker: {
      id: read.name('KILN_WORKER_ID', `${hostname()}-${cluster}`),
      cluster,
      concurrency: read.int('KILN_WORKER_CONCURRENCY', 2, 1, 1000),
      healthPort: read.int('KILN_WORKER_HEALTH_PORT', 0, 0, 65535),
      heartbeatSeconds: read.int('KILN_WORKER_HEARTBEAT_SECONDS', 10, 1, 3600),
      shutdownGraceSeconds: read.int('KILN_WORKER_SHUTDOWN_GRACE_SECONDS', 25, 0, 86400),
      journalDir: read.absolutePath('KILN_WORKER_JOURNAL_DIR', resolve('.kiln', 'journal')),
    },
    container: {
      network: read.string('KILN_CONTAINER_NETWORK', 'none'),
      unsafeHostNetwork: read.flag('KILN_UNSAFE_ALLOW_HOST_NETWORK'),
      memoryMb,
      memoryMbMax: read.int(
        'KILN_CONTAINER_MEMORY_MB_MAX',
        Math.max(2048, memoryMb),
        MIN_MEMORY_MB,
        1024 * 1024,
      ),
      cpus,
      cpusMax: read.decimal('KILN_CONTAINER_CPUS_MAX', Math.max(2, cpus), MIN_CPUS, MAX_CPUS),
      nofile: read.int('KILN_CONTAINER_NOFILE', 4096, 64, 1024 * 1024),
      tmpMb: read.int('KILN_CONTAINER_TMP_MB', 64, 1, 1024 * 1024),
      writableRootMb: read.int('KILN_CONTAINER_WRITABLE_ROOT_MB', 0, 0, 1024 * 1024 * 1024),
      pidsLimit: read.int('KILN_CONTAINER_PIDS_LIMIT', 256, 8, 1_000_000),
      user: read.string('KILN_CONTAINER_USER', '65534:65534', true),
      contractDelivery: read.oneOf('KILN_CONTRACT_DELIVERY', ['bind', 'archive'] as const, 'bind'),
      taskFilesDir: read.absolutePath('KILN_TASK_FILES_DIR', defaultTaskFilesDir()),
      taskDirMb: read.int('KILN_TASK_DIR_MB', 256, 1, 1024 * 1024),
      hotCodeMaxContainers: read.int('KILN_HOT_CODE_MAX_CONTAINERS', 8, 1, 1000),
    },
    hot: {
      maxContainers: read.int('KILN_HOT_MAX_CONTAINERS', 20, 1, 10_000),
      readySeconds: read.int('KILN_HOT_READY_SECONDS', 10, 1, 600),
      minAvailableMb: read.int('KILN_HOT_MIN_AVAILABLE_MB', 256, 0, 1024 * 1024 * 1024),
    },
    scheduler: {
      reconcileSeconds: read.int('KILN_RECONCILE_SECONDS', 1, 1, 3600),
      id: read.name('KILN_SCHEDULER_ID', `${hostname()}-${process.pid}`),
      leaseSeconds: read.int('KILN_LEADER_LEASE_SECONDS', 10, 2, 3600),
      heartbeatLapseSeconds: read.int('KILN_HEARTBEAT_LAPSE_SECONDS', 60, 3, 86400),
      claimStaleSeconds: read.int('KILN_CLAIM_STALE_SECONDS', 120, 1, 86400),
      maxAttempts: read.int('KILN_TASK_MAX_ATTEMPTS', 3, 1, 100),
      healthPort: read.int('KILN_SCHEDULER_HEALTH_PORT', 0, 0, 65535),
    },
    registry: read.registry('REGISTRY_URL', 'KILN_REGISTRY_USERNAME', 'KILN_REGISTRY_PASSWORD'),
    uploads: {
      maxBytes: read.int('KILN_UPLOAD_MAX_BYTES', 4 * 1024 ** 3, 1024, 2 ** 50),
      maxUnpackedBytes: read.int('KILN_UPLOAD_MAX_UNPACKED_BYTES', 8 * 1024 ** 3, 1024, 2 ** 50),
      maxRatio: read.int('KILN_UPLOAD_MAX_RATIO', 100, 2, 1_000_000),
      maxLayers: read.int('KILN_UPLOAD_MAX_LAYERS', 127, 1, 1000),
      maxEntries: read.int('KILN_UPLOAD_MAX_ENTRIES', 10_000, 3, 10_000_000),
      spoolDir: read.string('KILN_UPLOAD_SPOOL_DIR', join(tmpdir(), 'kiln-uploads')),
    },
    stacks: read.stacks('KILN_STACKS'),
    zips: {
      maxBytes: read.int('KILN_ZIP_MAX_BYTES', 256 * 1024 ** 2, 1024, 2 ** 40),
      maxUnpackedBytes: read.int('KILN_ZIP_MAX_UNPACKED_BYTES', 1024 ** 3, 1024, 2 ** 40),
      maxEntries: read.int('KILN_ZIP_MAX_ENTRIES', 10_000, 1, 65_534),
      cacheDir: read.string('KILN_ZIP_CACHE_DIR', join(tmpdir(), 'kiln-zips')),
    },
    credentialsKey: read.key('KILN_CREDENTIALS_KEY'),
    credentialsOldKeys: read.keyList('KILN_CREDENTIALS_OLD_KEYS'),
    images: {
      gcSeconds: read.int('KILN_IMAGE_GC_SECONDS', 86400, 0, 365 * 86400),
      maxBytes: read.int('KILN_IMAGE_MAX_BYTES', 8 * 1024 ** 3, 1024 * 1024, 2 ** 50),
      pullTimeoutSeconds: read.int('KILN_PULL_TIMEOUT_SECONDS', 600, 1, 24 * 3600),
      registries: read.hostPatterns('KILN_IMAGE_REGISTRIES', '*:*'),
      sharedImages: read.imagePatterns('KILN_SHARED_IMAGES'),
    },
    webhooks: {
      allowedHosts: read.allowList('WEBHOOK_ALLOWED_HOSTS'),
      concurrency: read.int('KILN_WEBHOOK_CONCURRENCY', 64, 0, 1000),
      projectConcurrency: read.int('KILN_WEBHOOK_PROJECT_CONCURRENCY', 16, 1, 1000),
      endpointConcurrency: read.int('KILN_WEBHOOK_ENDPOINT_CONCURRENCY', 8, 1, 1000),
      circuitFailures: read.int('KILN_WEBHOOK_CIRCUIT_FAILURES', 5, 1, 1000),
      maxPending: read.int('KILN_WEBHOOK_MAX_PENDING', 10_000, 1, 10_000_000),
      connectTimeoutMs: read.int('KILN_WEBHOOK_CONNECT_TIMEOUT_MS', 5000, 100, 60_000),
      timeoutMs: read.int('KILN_WEBHOOK_TIMEOUT_MS', 15_000, 100, 300_000),
      retrySchedule: read.intList(
        'KILN_WEBHOOK_RETRY_SCHEDULE',
        [5, 300, 1800, 7200, 18000, 36000, 36000],
        1,
        7 * 24 * 3600,
      ),
      secretOverlapHours: read.int('KILN_WEBHOOK_SECRET_OVERLAP_HOURS', 24, 0, 24 * 30),
      retentionDays: read.int(
        'KILN_WEBHOOK_RETENTION_DAYS',
        taskRetentionDays,
        1,
        MAX_RETENTION_DAYS,
      ),
    },
    logDrains: {
      bufferSeconds: read.int('KILN_LOG_DRAIN_BUFFER_SECONDS', 3600, 1, 7 * 24 * 3600),
      retryMaxSeconds: read.int('KILN_LOG_DRAIN_RETRY_MAX_SECONDS', 30, 1, 3600),
    },
    retention: {
      taskDays: taskRetentionDays,
      batch: read.int('KILN_RETENTION_BATCH', 1000, 1, 10_000),
      pauseMs: read.int('KILN_RETENTION_PAUSE_MS', 100, 0, 60_000),
      intervalSeconds: read.int('KILN_RETENTION_INTERVAL_SECONDS', 300, 1, 86_400),
    },
    quotas: {
      queuedTasks: read.int('KILN_QUOTA_QUEUED_TASKS', QUOTA_DEFAULTS.queuedTasks, 0, QUOTA_MAX),
      schedules: read.int('KILN_QUOTA_SCHEDULES', QUOTA_DEFAULTS.schedules, 0, QUOTA_MAX),
      webhooks: read.int('KILN_QUOTA_WEBHOOKS', QUOTA_DEFAULTS.webhooks, 0, QUOTA_MAX),
      logDrains: read.int('KILN_QUOTA_LOG_DRAINS', QUOTA_DEFAULTS.logDrains, 0, QUOTA_MAX),
      triggersPerCode: read.int(
        'KILN_QUOTA_TRIGGERS_PER_CODE',
        QUOTA_DEFAULTS.triggersPerCode,
        0,
        QUOTA_MAX,
      ),
      logFollowers: read.int('KILN_QUOTA_LOG_FOLLOWERS', QUOTA_DEFAULTS.logFollowers, 0, QUOTA_MAX),
      invokes: read.int('KILN_QUOTA_INVOKES', QUOTA_DEFAULTS.invokes, 0, QUOTA_MAX),
    },
    logLevel: read.oneOf('KILN_LOG_LEVEL', ['error', 'warn', 'log', 'debug'] as const, 'log'),
    logFormat: read.oneOf('KILN_LOG_FORMAT', ['json', 'pretty'] as const, 'json'),
    metrics: {
      enabled: read.oneOf('KILN_METRICS', ['0', '1'] as const, '1') === '1',
      projectLabels: read.oneOf('KILN_METRICS_PROJECT_LABELS', ['0', '1'] as const, '1') === '1',
      token: read.optional('KILN_METRICS_TOKEN'),
      apiPort: read.int('KILN_METRICS_PORT', 0, 0, 65535),
      apiHost: read.string('KILN_METRICS_HOST', '127.0.0.1'),
    },
    tracing: {
      endpoint: read.optionalUrl('OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']),
    },
  };
  if (config.redisSentinels.length > 0 && config.redisSentinelName === undefined) {
    problems.push("REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the primary's name)");
  }
  if (config.redisSentinels.length === 0 && config.redisSentinelName !== undefined) {
    problems.push('REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is not');
  }
  if (config.metrics.token !== undefined && config.metrics.token.length < 16) {
    problems.push('KILN_METRICS_TOKEN must be at least 16 characters');
  }
  if (config.metrics.apiPort !== 0 && config.metrics.apiPort === config.api.port) {
    problems.push('KILN_METRICS_PORT must differ from KILN_API_PORT (0 serves /metrics on it)');
  }
  if (config.api.uploadTimeoutSeconds < config.api.headersTimeoutSeconds) {
    // Node refuses a request timeout below the headers timeout.
    problems.push(
      'KILN_UPLOAD_TIMEOUT_SECONDS must not be below KILN_HTTP_HEADERS_TIMEOUT_SECONDS',
    );
  }
  if (config.tasks.defaultTimeout > config.tasks.maxTimeout) {
    problems.push('KILN_TASK_TIMEOUT_DEFAULT must not exceed KILN_TASK_TIMEOUT_MAX');
  }
  if (config.container.memoryMb > config.container.memoryMbMax) {
    problems.push('KILN_CONTAINER_MEMORY_MB must not exceed KILN_CONTAINER_MEMORY_MB_MAX');
  }
  if (config.container.cpus > config.container.cpusMax) {
    problems.push('KILN_CONTAINER_CPUS must not exceed KILN_CONTAINER_CPUS_MAX');
  }
  if (config.container.network.toLowerCase() === 'host' && !config.container.unsafeHostNetwork) {
    problems.push(
      "KILN_CONTAINER_NETWORK=host gives every task the worker host's own network (its loopback " +
        'services: Postgres, Redis, the registry); it is refused unless ' +
        'KILN_UNSAFE_ALLOW_HOST_NETWORK=1 is also set',
    );
  }
  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return config;
}

class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly problems: string[],
  ) {}

  optional(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string, allowEmpty = false): string {
    const value = this.env[name];
    if (value === undefined) return fallback;
    if (value.trim() === '' && !allowEmpty) return fallback;
    return value.trim();
  }

  name(name: string, fallback: string): string {
    const value = this.string(name, fallback);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(value)) {
      this.problems.push(`${name} must be 1-100 letters, digits, '.', '_' or '-' (got "${value}")`);
    }
    return value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  }

  /** A decimal number in [min, max], e.g. `0.5`. */
  decimal(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const value = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
    if (!(value >= min && value <= max)) {
      this.problems.push(`${name} must be a number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return value;
  }

  absolutePath(name: string, fallback: string): string {
    const value = this.string(name, fallback);
    if (!value.startsWith('/')) {
      this.problems.push(`${name} must be an absolute path (got "${value}")`);
    }
    return value;
  }

  /** A URL when set, else undefined. */
  optionalUrl(name: string, protocols: string[]): string | undefined {
    return this.optional(name) === undefined ? undefined : this.url(name, protocols);
  }

  url(name: string, protocols: string[]): string {
    const raw = this.optional(name);
    if (raw === undefined) {
      this.problems.push(`${name} is required`);
      return '';
    }
    try {
      const url = new URL(raw);
      if (!protocols.includes(url.protocol)) {
        this.problems.push(`${name} must start with ${protocols.join(' or ')}//`);
      }
    } catch {
      this.problems.push(`${name} is not a valid URL`);
    }
    return raw;
  }

  /** A 32-byte key given as 64 hex digits or base64. */
  key(name: string): Buffer | undefined {
    const raw = this.optional(name);
    return raw === undefined ? undefined : this.keyFrom(name, raw);
  }

  /** Comma-separated 32-byte keys; empty means none. */
  keyList(name: string): Buffer[] {
    return (this.env[name] ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '')
      .map((item) => this.keyFrom(name, item))
      .filter((key): key is Buffer => key !== undefined);
  }

  private keyFrom(name: string, raw: string): Buffer | undefined {
    const key = /^[0-9a-fA-F]{64}$/.test(raw)
      ? Buffer.from(raw, 'hex')
      : Buffer.from(raw, 'base64');
    if (key.length !== 32) {
      this.problems.push(`${name} must be 32 bytes, as 64 hex digits or base64`);
      return undefined;
    }
    return key;
  }

  registry(name: string, userName: string, passwordName: string): PlatformRegistry | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    let url: URL;
    try {
      const loopback = /^(localhost|127\.[0-9.]+|\[::1\])(:|$)/.test(raw);
      url = new URL(/^[a-z]+:\/\//.test(raw) ? raw : `${loopback ? 'http' : 'https'}://${raw}`);
    } catch {
      this.problems.push(`${name} must be host:port or an http(s):// URL (got "${raw}")`);
      return undefined;
    }
    if (
      !['http:', 'https:'].includes(url.protocol) ||
      (url.pathname !== '/' && url.pathname !== '')
    ) {
      this.problems.push(
        `${name} must be host:port or an http(s):// URL without a path (got "${raw}")`,
      );
      return undefined;
    }
    return {
      baseUrl: `${url.protocol}//${url.host}`,
      host: url.host,
      username: this.optional(userName),
      password: this.optional(passwordName),
    };
  }

  /** Comma-separated proxy addresses: IPs, CIDRs, or Express's `loopback`, `linklocal`, `uniquelocal`. */
  proxies(name: string): string[] {
    const read = parseCommaList(this.env[name] ?? '', (item) =>
      ['loopback', 'linklocal', 'uniquelocal'].includes(item) || parseCidr(item) ? item : null,
    );
    return this.list(name, read, 'addresses, CIDRs, loopback, linklocal or uniquelocal');
  }

  /** Comma-separated `host:port` (a bracketed IPv6 address too); empty means none. */
  hostPorts(name: string): { host: string; port: number }[] {
    const read = parseCommaList(this.env[name] ?? '', (item) => {
      const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65535) return null;
      return { host: match[1].replace(/^\[|\]$/g, ''), port };
    });
    return this.list(name, read, 'host:port');
  }

  /** Comma-separated integers, each in [min, max]; empty means none. */
  intList(name: string, fallback: number[], min: number, max: number): number[] {
    const raw = this.env[name];
    if (raw === undefined) return fallback;
    const items = raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    const values = items.map(Number);
    if (values.some((value) => !Number.isInteger(value) || value < min || value > max)) {
      this.problems.push(
        `${name} must be comma-separated integers from ${min} to ${max} (got "${raw}")`,
      );
      return fallback;
    }
    return values;
  }

  allowList(name: string): AllowEntry[] {
    return this.list(
      name,
      parseAllowList(this.env[name] ?? ''),
      'host names, addresses or CIDRs, each optionally :port',
    );
  }

  hostPatterns(name: string, fallback: string): HostPattern[] {
    return this.list(
      name,
      parseHostPatterns(this.env[name] ?? fallback),
      'host, host:port, *.domain, * or host:*',
    );
  }

  /** Comma-separated image name patterns: lowercase reference characters and `*`. */
  /** `name=image` pairs, e.g. `node-20=registry:5000/stacks/node:20`; names are unique. */
  stacks(name: string): Stack[] {
    const read = parseCommaList(this.env[name] ?? '', (item) => {
      const match = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=([^\s=,]{1,512})$/.exec(item);
      return match ? { name: match[1], image: match[2] } : null;
    });
    const stacks = this.list(name, read, 'name=image pairs, e.g. node-20=kiln-test/node:20');
    const names = stacks.map((stack) => stack.name);
    const twice = names.filter((stackName, index) => names.indexOf(stackName) !== index);
    if (twice.length) this.problems.push(`${name}: stack "${twice[0]}" is named twice`);
    return stacks;
  }

  imagePatterns(name: string): string[] {
    const read = parseCommaList(this.env[name] ?? '', (item) =>
      /^[a-z0-9*._\-/:[\]]+$/.test(item) ? item : null,
    );
    return this.list(name, read, 'image names with *, e.g. kiln-test/*');
  }

  /** The entries of a comma-separated setting; the items it could not read are a problem. */
  private list<T>(name: string, read: { entries: T[]; bad: string[] }, use: string): T[] {
    if (read.bad.length > 0) {
      this.problems.push(
        `${name}: cannot read ${read.bad.map((item) => `"${item}"`).join(', ')} (use ${use})`,
      );
    }
    return read.entries;
  }

  /** `1`, `true`, `yes` (on) or `0`, `false`, `no`, empty (off). */
  flag(name: string): boolean {
    const raw = this.optional(name)?.toLowerCase();
    if (raw === undefined || ['0', 'false', 'no'].includes(raw)) return false;
    if (['1', 'true', 'yes'].includes(raw)) return true;
    this.problems.push(`${name} must be 1, true, yes, 0, false or no (got "${raw}")`);
    return false;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`);
      return fallback;
    }
    return raw as T;
  }
}

function defaultTaskFilesDir(): string {
  return join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'kiln-task-files');
}
