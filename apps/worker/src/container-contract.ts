import { posix } from 'node:path';
import type { CodeRevision } from '@kiln/codes';
import type { KilnConfig } from '@kiln/config';
import type { ContainerSpec, TarEntry } from '@kiln/docker';
import type { Task } from '@kiln/tasks';

/** Where the contract's files live inside every task container. */
export const CONTRACT_PATHS = {
  filesDir: '/mnt/kiln',
  payload: '/mnt/kiln/payload.json',
  config: '/mnt/kiln/config.json',
  /** A zip code package, unpacked read-only; copied into `taskDir` before the command runs. */
  code: '/mnt/kiln/code',
  taskDir: '/mnt/task',
  tmp: '/tmp',
} as const;

/** The CPUs and memory one task gets. */
export interface TaskLimits {
  cpus: number;
  memoryMb: number;
}

/**
 * What a task of `revision` runs with: the code's own `cpus` and `memory`, else the operator's
 * defaults; never above the operator's maxima (the API refuses more, but a revision made under
 * another setting may ask for it), nor above the CPUs the engine has (Docker refuses more).
 */
export function taskLimits(
  revision: Pick<CodeRevision, 'cpus' | 'memoryMb'>,
  config: KilnConfig['container'],
  engineCpus: number | undefined,
): TaskLimits {
  const cpus = Math.min(revision.cpus ?? config.cpus, config.cpusMax, engineCpus ?? Infinity);
  return { cpus, memoryMb: Math.min(revision.memoryMb ?? config.memoryMb, config.memoryMbMax) };
}

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
 * The root filesystem is read-only (unless the operator allows a size-capped writable one): the
 * task writes to `TASK_DIR`, a tmpfs owned by the task's user, and `/tmp`, a tmpfs for everyone
 * (sticky, as a `/tmp` is); both are size-capped and count in the memory limit. `filesDir` is
 * the host directory holding this task's payload and config (`bind` delivery), mounted read-only
 * at `/mnt/kiln`; without it `/mnt/kiln` is an empty volume of the container's own, read-only
 * inside it, that the worker fills with {@link contractArchive} before the start (`archive`
 * delivery: the archive API cannot write to a read-only root, nor into a tmpfs).
 *
 * `imageVolumes` are the image's `VOLUME` paths: Docker would give each a writable volume on its
 * own disk, with no size limit, so each gets a tmpfs like `/tmp` instead (empty: what the image
 * holds there is not copied in).
 */
export function containerSpec(
  task: Task,
  revision: CodeRevision,
  image: string,
  workerId: string,
  config: KilnConfig['container'],
  filesDir: string | undefined,
  limits: TaskLimits,
  imageVolumes: string[] = [],
): ContainerSpec {
  const spec = sandboxSpec(revision, image, config, limits, imageVolumes, {
    PAYLOAD_FILE: CONTRACT_PATHS.payload,
    CONFIG_FILE: CONTRACT_PATHS.config,
    TASK_ID: task.id,
    TASK_DIR: CONTRACT_PATHS.taskDir,
  });
  return {
    ...spec,
    labels: {
      'kiln.task': task.id,
      'kiln.attempt': String(task.attempt),
      'kiln.worker': workerId,
      'kiln.project': task.projectId,
    },
    readOnlyBind: filesDir ? { source: filesDir, target: CONTRACT_PATHS.filesDir } : undefined,
    deliveryVolume: filesDir ? undefined : CONTRACT_PATHS.filesDir,
  };
}

/**
 * The command of a zip code package's task: the unpacked files are copied from their read-only
 * place into `TASK_DIR` (a tmpfs of the task's own, so they are writable and count in its size
 * and memory), then the code's command replaces the shell. The image needs a POSIX `sh` and `cp`.
 */
export function zipCommand(cmd: string[]): string[] {
  return [
    '/bin/sh',
    '-c',
    `cp -R ${CONTRACT_PATHS.code}/. "$TASK_DIR"/ && exec "$@"`,
    'kiln-zip',
    ...cmd,
  ];
}

/** Where a hot container listens (docs/hot.md, "Start"). */
export const HOT_SOCKET_NAME = 'hot.sock';
export const HOT_PATHS = {
  socketDir: '/mnt/kiln-hot',
  socket: `/mnt/kiln-hot/${HOT_SOCKET_NAME}`,
} as const;

/**
 * A hot container of `revision` (docs/hot.md): hardened exactly as a cold one, its contract files
 * bound read-only from `dirs.files` (the payload rewritten for each task), and its socket
 * directory `dirs.socket` bound writable at `HOT_PATHS.socketDir`. It serves many tasks, so it
 * carries no task's id: its labels name the worker (reaped with the worker's other containers),
 * the project and the pool key.
 */
export function hotContainerSpec(
  revision: CodeRevision,
  image: string,
  workerId: string,
  config: KilnConfig['container'],
  dirs: { files: string; socket: string },
  limits: TaskLimits,
  imageVolumes: string[] = [],
): ContainerSpec {
  const spec = sandboxSpec(revision, image, config, limits, imageVolumes, {
    PAYLOAD_FILE: CONTRACT_PATHS.payload,
    CONFIG_FILE: CONTRACT_PATHS.config,
    TASK_DIR: CONTRACT_PATHS.taskDir,
    KILN_HOT_SOCKET: HOT_PATHS.socket,
  });
  return {
    ...spec,
    labels: {
      'kiln.worker': workerId,
      'kiln.project': revision.projectId,
      'kiln.hot': revision.id,
    },
    readOnlyBind: { source: dirs.files, target: CONTRACT_PATHS.filesDir },
    socketBind: { source: dirs.socket, target: HOT_PATHS.socketDir },
  };
}

/**
 * What every task container shares, cold or hot: the code's image, command and env_vars (the
 * contract's variables `contractEnv` win over env_vars of the same name), the task's user, network
 * and limits, and its writable places.
 */
function sandboxSpec(
  revision: CodeRevision,
  image: string,
  config: KilnConfig['container'],
  limits: TaskLimits,
  imageVolumes: string[],
  contractEnv: Record<string, string>,
): Omit<ContainerSpec, 'labels'> {
  const [uid, gid] = parseUser(config.user);
  const env = { ...revision.envVars, ...contractEnv };
  const command = revision.command.trim();
  return {
    image,
    cmd: command === '' ? undefined : command.split(/\s+/),
    env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    workingDir: CONTRACT_PATHS.taskDir,
    user: config.user,
    network: config.network,
    memoryBytes: limits.memoryMb * MIB,
    nanoCpus: Math.round(limits.cpus * 1e9),
    pidsLimit: config.pidsLimit,
    nofile: config.nofile,
    tmpfs: [
      {
        target: CONTRACT_PATHS.taskDir,
        uid,
        gid,
        mode: '0700',
        sizeBytes: config.taskDirMb * MIB,
      },
      ...[CONTRACT_PATHS.tmp, ...volumesOutsideContract(imageVolumes)].map((target) => ({
        target,
        uid: 0,
        gid: 0,
        mode: '1777',
        sizeBytes: config.tmpMb * MIB,
      })),
    ],
    writableRootBytes: config.writableRootMb > 0 ? config.writableRootMb * MIB : undefined,
  };
}

const MIB = 1024 * 1024;

/**
 * The image's volume paths, normalized, but for `/tmp` and the contract's own mounts and what is
 * under them (a mount point inside the read-only files directory would have to be made in it).
 */
function volumesOutsideContract(volumes: string[]): string[] {
  const ours = [
    CONTRACT_PATHS.tmp,
    CONTRACT_PATHS.filesDir,
    CONTRACT_PATHS.taskDir,
    HOT_PATHS.socketDir,
  ];
  const paths = volumes
    .map((volume) => posix.normalize(`/${volume}`).replace(/(.)\/$/, '$1'))
    .filter(
      (path) => path !== '/' && !ours.some((own) => path === own || path.startsWith(`${own}/`)),
    );
  return [...new Set(paths)];
}

/**
 * The read-only payload and config files (root's, readable by all), for Docker's archive API, to
 * be extracted at `CONTRACT_PATHS.filesDir`.
 */
export function contractArchive(task: Task, revision: CodeRevision): TarEntry[] {
  return Object.entries(contractFileContents(task, revision)).map(([name, content]) => ({
    path: name,
    content: Buffer.from(content, 'utf8'),
    mode: 0o444,
    uid: 0,
    gid: 0,
  }));
}

/** `uid[:gid]` as numbers; a named or empty user leaves the files to root (the image's user is root then too). */
function parseUser(user: string): [number, number] {
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!match) return [0, 0];
  const uid = Number(match[1]);
  return [uid, match[2] === undefined ? uid : Number(match[2])];
}
