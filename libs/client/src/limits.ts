/**
 * The ranges the API gives the whole-number fields people set (docs/api.md, "Ranges of every
 * value"). The server's specs read them from here, so the API, this client and the `kiln` CLI
 * cannot drift apart. `timeout` is the highest an operator may allow (`KILN_TASK_TIMEOUT_MAX`);
 * a stack may allow less.
 */
export const LIMITS = {
  maxConcurrency: [-1, 100_000],
  retries: [0, 10],
  retriesDelay: [0, 7 * 24 * 3600],
  priority: [0, 2],
  timeout: [0, 7 * 24 * 3600],
  delay: [0, 7 * 24 * 3600],
  runEvery: [60, 10 * 365 * 24 * 3600],
  runTimes: [0, 2_147_483_647],
  /** Seconds `POST …/codes/{name}/invoke` waits for its task (`?wait=`). */
  invokeWait: [1, 300],
  /** A hot code's `hot.idle_timeout`, `hot.max_tasks` and `hot.max_containers` (the last also at most the server's KILN_HOT_CODE_MAX_CONTAINERS). */
  hotIdleTimeout: [1, 3600],
  hotMaxTasks: [1, 1_000_000],
  hotMaxContainers: [1, 1000],
} as const satisfies Record<string, readonly [min: number, max: number]>;

/** Seconds an invoke waits for its task when the caller does not say (`?wait=`). */
export const INVOKE_WAIT_DEFAULT = 30;
