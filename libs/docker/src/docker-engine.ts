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
  pidsLimit: number;
  /** A tmpfs owned by `uid:gid` (mode 0700, exec allowed), the task's one writable place. */
  tmpfs: { target: string; uid: number; gid: number; sizeBytes: number };
  /** A host directory mounted read-only: the only host path a task container ever sees. */
  readOnlyBind?: { source: string; target: string };
}

export interface RegistryLogin {
  username: string;
  password: string;
  serveraddress: string;
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

  async hasImage(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }

  /**
   * Pulls an image, resolving when the engine has all of it; a failed pull rejects with its reason.
   * `auth` is the registry login, when the registry wants one.
   */
  async pull(ref: string, auth?: RegistryLogin): Promise<void> {
    const stream = (await this.docker.pull(ref, auth ? { authconfig: auth } : {})) as Readable;
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (error: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
          const failed = events?.find((event) => event.error || event.errorDetail);
          if (error) reject(error);
          else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
          else resolve();
        },
      );
    });
  }

  /**
   * Creates a task container, hardened: no capabilities, no new privileges, memory and pids
   * limits, no logging driver (output is read from the attach stream), no host mounts but the
   * one read-only directory of the task's own contract files, when there is one.
   */
  async create(spec: ContainerSpec): Promise<string> {
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
        PidsLimit: spec.pidsLimit,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        LogConfig: { Type: 'none', Config: {} },
        Binds: [],
        Mounts: spec.readOnlyBind
          ? [
              {
                Type: 'bind',
                Source: spec.readOnlyBind.source,
                Target: spec.readOnlyBind.target,
                ReadOnly: true,
              },
            ]
          : [],
        Tmpfs: {
          [spec.tmpfs.target]: [
            'rw',
            'exec',
            'nosuid',
            'nodev',
            `size=${spec.tmpfs.sizeBytes}`,
            'mode=0700',
            `uid=${spec.tmpfs.uid}`,
            `gid=${spec.tmpfs.gid}`,
          ].join(','),
        },
        AutoRemove: false,
      },
    });
    return container.id;
  }

  /** Copies a tar archive into the (not yet started) container at `/`. */
  async putArchive(id: string, archive: Buffer): Promise<void> {
    await this.docker.getContainer(id).putArchive(archive, { path: '/' });
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
