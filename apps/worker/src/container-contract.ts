import type { CodeRevision } from '@kiln/codes';
import type { KilnConfig } from '@kiln/config';
import type { ContainerSpec, TarEntry } from '@kiln/docker';
import type { Task } from '@kiln/tasks';

/** Where the contract's files live inside every task container. */
export const CONTRACT_PATHS = {
  payload: '/mnt/kiln/payload.json',
  config: '/mnt/kiln/config.json',
  taskDir: '/mnt/task',
} as const;

/**
 * What a task sees (DESIGN.md "Container contract"): `PAYLOAD_FILE`, `CONFIG_FILE`, `TASK_ID`,
 * `TASK_DIR` as its working directory, the code's `env_vars`, and the payload on STDIN. The
 * code's `command` is split on whitespace into Docker's `Cmd`, as IronWorker's runner does; the
 * image's ENTRYPOINT is kept.
 */
export function containerSpec(
  task: Task,
  revision: CodeRevision,
  image: string,
  workerId: string,
  config: KilnConfig['container'],
): ContainerSpec {
  const contractEnv: Record<string, string> = {
    PAYLOAD_FILE: CONTRACT_PATHS.payload,
    CONFIG_FILE: CONTRACT_PATHS.config,
    TASK_ID: task.id,
    TASK_DIR: CONTRACT_PATHS.taskDir,
  };
  // The contract's variables win over a code's env_vars of the same name.
  const env = { ...revision.envVars, ...contractEnv };
  const command = revision.command.trim();
  return {
    image,
    cmd: command === '' ? undefined : command.split(/\s+/),
    env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    labels: {
      'kiln.task': task.id,
      'kiln.attempt': String(task.attempt),
      'kiln.worker': workerId,
      'kiln.project': task.projectId,
    },
    workingDir: CONTRACT_PATHS.taskDir,
    user: config.user,
    network: config.network,
    memoryBytes: config.memoryMb * 1024 * 1024,
    pidsLimit: config.pidsLimit,
  };
}

/**
 * The read-only payload and config files (root's, readable by all) and the task directory, owned
 * by the task's user so that it is the one writable place the task is given.
 */
export function contractFiles(task: Task, revision: CodeRevision, user: string): TarEntry[] {
  const [uid, gid] = parseUser(user);
  const path = (absolute: string): string => absolute.replace(/^\//, '');
  const file = (absolute: string, content: string): TarEntry => ({
    path: path(absolute),
    content: Buffer.from(content, 'utf8'),
    mode: 0o444,
    uid: 0,
    gid: 0,
  });
  return [
    { path: 'mnt/kiln', mode: 0o755, uid: 0, gid: 0 },
    file(CONTRACT_PATHS.payload, task.payload),
    file(CONTRACT_PATHS.config, revision.config),
    { path: path(CONTRACT_PATHS.taskDir), mode: 0o700, uid, gid },
  ];
}

/** `uid[:gid]` as numbers; a named or empty user leaves the files to root (the image's user is root then too). */
function parseUser(user: string): [number, number] {
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!match) return [0, 0];
  const uid = Number(match[1]);
  return [uid, match[2] === undefined ? uid : Number(match[2])];
}
