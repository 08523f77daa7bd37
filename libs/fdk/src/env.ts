/**
 * The FDK's one reader of the process environment. The FDK is a package of its own, with no
 * dependencies, so it cannot use the server's libs/config: the variables of Kiln's container
 * contract (DESIGN.md "Container contract", docs/hot.md) are read here and only here.
 */
export interface FdkEnvironment {
  /** `KILN_HOT_SOCKET`: where a hot container listens; unset (or empty) runs the handler cold. */
  hotSocket: string | undefined;
  /** `PAYLOAD_FILE`: the cold task's payload (hot, each call brings its own). */
  payloadFile: string | undefined;
  /** `CONFIG_FILE`: the code's config, the same for every task of a hot container. */
  configFile: string | undefined;
  /** `TASK_ID`: set for a cold task only (hot, each call brings its own). */
  taskId: string;
  /** `TASK_DIR`: the task's scratch directory, which a hot container empties after each task. */
  taskDir: string | undefined;
}

/** The contract's variables from `env` (the process's environment unless given). */
export function fdkEnvironment(
  env: Record<string, string | undefined> = process.env,
): FdkEnvironment {
  const value = (name: string): string | undefined => env[name] || undefined;
  return {
    hotSocket: value('KILN_HOT_SOCKET'),
    payloadFile: value('PAYLOAD_FILE'),
    configFile: value('CONFIG_FILE'),
    taskId: value('TASK_ID') ?? '',
    taskDir: value('TASK_DIR'),
  };
}
