import type { CodeRevision } from '@kiln/codes';
import type { KilnConfig } from '@kiln/config';
import type { ContainerSpec, TarEntry } from '@kiln/docker';
import type { Task } from '@kiln/tasks';

/** Where the contract's files live inside every task container. */
export const CONTRACT_PATHS = {
  filesDir: '/mnt/kiln',
  payload: '/mnt/kiln/payload.json',
  config: '/mnt/kiln/config.json',
  taskDir: '/mnt/task',
} as const;

/** The contract's read-only files, by their name in `CONTRACT_PATHS.filesDir`. */
export function contractFileContents(
  task: Task,
  revision: CodeRevision,
): { 'payload.json': string; 'config.json': string } {
  return { 'payload.json': task.payload, 'config.json': revision.config };
}

/**
 * What a task sees (DESIGN.md "Container contract"): `PAYLOAD_FILE`, `CONFIG_FILE`, `TASK_ID`,
 * `TASK_DIR` as its working directory, the code's `env_vars`, and the payload on STDIN. The
 * code's `command` is split on whitespace into Docker's `Cmd`, as IronWorker's runner does; the
 * image's ENTRYPOINT is kept.
 *
 * `TASK_DIR` is a tmpfs owned by the task's user. `filesDir` is the host directory holding this
 * task's payload and config (`bind` delivery), mounted read-only at `/mnt/kiln`; without it the
 * files are copied in with {@link contractArchive} (`archive` delivery).
 */
export function containerSpec(
  task: Task,
  revision: CodeRevision,
  image: string,
  workerId: string,
  config: KilnConfig['container'],
  filesDir: string | undefined,
): ContainerSpec {
  const [uid, gid] = parseUser(config.user);
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
    tmpfs: { target: CONTRACT_PATHS.taskDir, uid, gid, sizeBytes: config.taskDirMb * 1024 * 1024 },
    readOnlyBind: filesDir ? { source: filesDir, target: CONTRACT_PATHS.filesDir } : undefined,
  };
}

/** The read-only payload and config files (root's, readable by all), for Docker's archive API. */
export function contractArchive(task: Task, revision: CodeRevision): TarEntry[] {
  const path = (absolute: string): string => absolute.replace(/^\//, '');
  return [
    { path: path(CONTRACT_PATHS.filesDir), mode: 0o755, uid: 0, gid: 0 },
    ...Object.entries(contractFileContents(task, revision)).map(([name, content]) => ({
      path: `${path(CONTRACT_PATHS.filesDir)}/${name}`,
      content: Buffer.from(content, 'utf8'),
      mode: 0o444,
      uid: 0,
      gid: 0,
    })),
  ];
}

/** `uid[:gid]` as numbers; a named or empty user leaves the files to root (the image's user is root then too). */
function parseUser(user: string): [number, number] {
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!match) return [0, 0];
  const uid = Number(match[1]);
  return [uid, match[2] === undefined ? uid : Number(match[2])];
}
