import { Inject, Injectable } from '@nestjs/common';
import Docker from 'dockerode';
import { Readable } from 'node:stream';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

export interface ContainerSpec {
  image: string;
  cmd: string[] | undefined;
  env: string[];
  labels: Record<string, string>;
  workingDir: string;
  user: string;
  network: string;
  memoryBytes: number;
  /** CPU time, in billionths of a CPU (Docker's `NanoCpus`, a CFS quota). */
  nanoCpus: number;
  pidsLimit: number;
  /** Open files per process (soft and hard); core dumps are always off. */
  nofile: number;
  /** Size-capped tmpfs mounts owned by `uid:gid` (exec allowed): the task's writable places. */
  tmpfs: TmpfsSpec[];
  /**
   * Undefined: the root filesystem is read-only. Else it is writable up to this many bytes, a
   * cap the storage driver must enforce (`StorageOpt size`).
   */
  writableRootBytes?: number;
  /** A host directory mounted read-only: the task's contract files. */
  readOnlyBind?: { source: string; target: string };
  /**
   * A host directory mounted writable: a hot container's socket directory (docs/hot.md), its
   * own and nothing else. With `readOnlyBind`, the only host paths a task container ever sees.
   */
  socketBind?: { source: string; target: string };
  /**
   * A path where the container gets an empty volume of its own, read-only inside the container
   * (Docker `ReadonlyPaths`), for `putArchive` to fill before the start; removed with it.
   */
  deliveryVolume?: string;
}

export interface TmpfsSpec {
  target: string;
  uid: number;
  gid: number;
  /** Octal, e.g. `0700`, `1777`. */
  mode: string;
  sizeBytes: number;
}

export interface ImageFacts {
  /** As the engine stores it: all its layers, uncompressed. */
  size: number;
  /** The paths its `VOLUME`s declare: Docker would give each a volume on its own disk. */
  volumes: string[];
}

/** What the worker needs to know of its engine. */
export interface EngineInfo {
  cpus: number;
  /** The storage driver (`overlay2`, `btrfs`, `zfs`, …) and its backing filesystem, if it says. */
  driver: string;
  backingFilesystem: string | undefined;
}

/** The paths Docker makes read-only in every unprivileged container; `ReadonlyPaths` replaces them. */
const DEFAULT_READONLY_PATHS = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

export interface RegistryLogin {
  username: string;
  password: string;
  serveraddress: string;
}

interface PullEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

export interface ContainerExit {
  exitCode: number;
  oomKilled: boolean;
}

/** The Docker engine, as the worker needs it; dockerode stays behind this class. */
@Injectable()
export class DockerEngine {
  private readonly docker: Docker;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.docker = new Docker({ socketPath: config.dockerSocket });
  }

  async ping(): Promise<void> {
    await this.docker.ping();
  }

  async info(): Promise<EngineInfo> {
    const info = (await this.docker.info()) as {
      NCPU: number;
      Driver: string;
      DriverStatus?: [string, string][] | null;
    };
    const backing = (info.DriverStatus ?? []).find(([key]) => key === 'Backing Filesystem');
    return { cpus: info.NCPU, driver: info.Driver, backingFilesystem: backing?.[1] };
  }

  /**
   * Whether the engine refuses a container whose root filesystem is capped at `mb` MiB (what
   * `StorageOpt size` needs of the storage driver, xfs's `pquota` for overlay2), found by creating
   * one from any image it has and removing it; undefined when it can, or has no image to try.
   */
  async rootSizeCapProblem(mb: number): Promise<string | undefined> {
    const [image] = await this.docker.listImages();
    if (!image) return undefined;
    try {
      const probe = await this.docker.createContainer({
        Image: image.Id,
        Cmd: ['true'],
        Labels: { 'kiln.probe': 'storage-size' },
        NetworkDisabled: true,
        HostConfig: { StorageOpt: { size: `${mb}M` }, NetworkMode: 'none' },
      });
      await probe.remove({ force: true, v: true });
      return undefined;
    } catch (error) {
      return `the engine refuses a size-capped root filesystem: ${(error as Error).message}`;
    }
  }

  async hasImage(ref: string): Promise<boolean> {
    return (await this.image(ref)) !== undefined;
  }

  /** What the worker needs of an image the engine has; undefined if absent. */
  async image(ref: string): Promise<ImageFacts | undefined> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      return { size: info.Size, volumes: Object.keys(info.Config?.Volumes ?? {}) };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * Pulls an image, resolving when the engine has all of it; a failed pull rejects with its reason.
   * `auth` is the registry login, when the registry wants one. Aborting `signal` closes the
   * request, and the engine then stops the pull (it cancels its downloads when its client goes).
   * `onProgress` hears the sizes of the layers being downloaded (compressed, as the registry
   * sends them) as the engine reports them, and may abort.
   */
  async pull(
    ref: string,
    auth: RegistryLogin | undefined,
    signal: AbortSignal,
    onProgress?: (downloadBytes: number) => void,
  ): Promise<void> {
    const stream = (await this.docker.pull(ref, {
      ...(auth ? { authconfig: auth } : {}),
      abortSignal: signal,
    })) as Readable;
    const layers = new Map<string, number>();
    await new Promise<void>((resolve, reject) => {
      const aborted = () => reject(signal.reason as Error);
      signal.addEventListener('abort', aborted, { once: true });
      this.docker.modem.followProgress(
        stream,
        (error: Error | null, events: PullEvent[]) => {
          signal.removeEventListener('abort', aborted);
          const failed = events?.find((event) => event.error || event.errorDetail);
          if (error) reject(error);
          else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
          else resolve();
        },
        (event: PullEvent) => {
          const total = event.progressDetail?.total;
          if (!onProgress || event.status !== 'Downloading' || !event.id || !total) return;
          if (layers.get(event.id) === total) return;
          layers.set(event.id, total);
          onProgress([...layers.values()].reduce((sum, size) => sum + size, 0));
        },
      );
    });
  }

  /**
   * Creates a task container, hardened: no capabilities, no new privileges, memory, CPU, pids and
   * open-file limits, no core dumps, a read-only root (or one capped in size) with size-capped
   * tmpfs mounts to write to, no logging driver (output is read from the attach stream), no host
   * mounts but the one read-only directory of the task's own contract files, when there is one.
   */
  async create(spec: ContainerSpec): Promise<string> {
    const mounts: Docker.MountConfig = [];
    if (spec.readOnlyBind) {
      mounts.push({
        Type: 'bind',
        Source: spec.readOnlyBind.source,
        Target: spec.readOnlyBind.target,
        ReadOnly: true,
      });
    }
    if (spec.socketBind) {
      mounts.push({
        Type: 'bind',
        Source: spec.socketBind.source,
        Target: spec.socketBind.target,
        ReadOnly: false,
      });
    }
    if (spec.deliveryVolume) {
      // Writable for the archive API, read-only inside the container (ReadonlyPaths below).
      // An anonymous volume: no Source. The API takes the options left out; the typings want them.
      mounts.push({
        Type: 'volume',
        Target: spec.deliveryVolume,
        VolumeOptions: { NoCopy: true },
      } as unknown as Docker.MountSettings);
    }
    const container = await this.docker.createContainer({
      Image: spec.image,
      Cmd: spec.cmd,
      Env: spec.env,
      Labels: spec.labels,
      WorkingDir: spec.workingDir,
      User: spec.user || undefined,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: true,
      StdinOnce: true,
      Tty: false,
      NetworkDisabled: spec.network === 'none',
      HostConfig: {
        NetworkMode: spec.network,
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        NanoCpus: spec.nanoCpus,
        PidsLimit: spec.pidsLimit,
        Ulimits: [
          { Name: 'nofile', Soft: spec.nofile, Hard: spec.nofile },
          { Name: 'core', Soft: 0, Hard: 0 },
        ],
        ReadonlyRootfs: spec.writableRootBytes === undefined,
        ...(spec.writableRootBytes === undefined
          ? {}
          : { StorageOpt: { size: String(spec.writableRootBytes) } }),
        ...(spec.deliveryVolume
          ? { ReadonlyPaths: [...DEFAULT_READONLY_PATHS, spec.deliveryVolume] }
          : {}),
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        LogConfig: { Type: 'none', Config: {} },
        Binds: [],
        Mounts: mounts,
        Tmpfs: Object.fromEntries(
          spec.tmpfs.map((tmpfs) => [
            tmpfs.target,
            [
              'rw',
              'exec',
              'nosuid',
              'nodev',
              `size=${tmpfs.sizeBytes}`,
              `mode=${tmpfs.mode}`,
              `uid=${tmpfs.uid}`,
              `gid=${tmpfs.gid}`,
            ].join(','),
          ]),
        ),
        AutoRemove: false,
      },
    });
    return container.id;
  }

  /** Copies a tar archive into the (not yet started) container, extracted at `path`. */
  async putArchive(id: string, archive: Buffer, path: string): Promise<void> {
    await this.docker.getContainer(id).putArchive(archive, { path });
  }

  /** Attaches to STDIN/STDOUT/STDERR; output frames are multiplexed (see `FrameDemuxer`). */
  async attach(id: string): Promise<NodeJS.ReadWriteStream> {
    return this.docker.getContainer(id).attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    });
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start();
  }

  async wait(id: string): Promise<ContainerExit> {
    const result = (await this.docker.getContainer(id).wait()) as { StatusCode: number };
    // Only a SIGKILL (137) can be the OOM killer's work: spare the inspect otherwise.
    if (result.StatusCode !== 137) return { exitCode: result.StatusCode, oomKilled: false };
    const info = await this.docker.getContainer(id).inspect();
    return { exitCode: result.StatusCode, oomKilled: info.State.OOMKilled };
  }

  /** Kills a container; one that already stopped or is gone is fine. */
  async kill(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).kill();
    } catch (error) {
      const status = statusOf(error);
      if (status !== 404 && status !== 409 && status !== 304) throw error;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (error) {
      const status = statusOf(error);
      if (status !== 404 && status !== 409) throw error;
    }
  }

  async inspect(id: string): Promise<Docker.ContainerInspectInfo | null> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  /**
   * Removes an image reference (the image too once nothing else names it). False when a container
   * still uses it; an image already gone is fine.
   */
  async removeImage(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).remove();
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return true;
      if (status === 409) return false;
      throw error;
    }
  }

  /** Ids of every container, running or not, carrying `label=value`. */
  async containersWithLabel(label: string, value: string): Promise<string[]> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${label}=${value}`] },
    });
    return list.map((container) => container.Id);
  }
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown })?.statusCode;
  return typeof status === 'number' ? status : undefined;
}
