import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ConfigError, KILN_CONFIG, KilnConfig } from '@kiln/config';
import { DockerEngine, EngineInfo } from '@kiln/docker';

/**
 * What the worker's engine allows of the container limits. At start, before any task is taken: a
 * writable root filesystem (`KILN_CONTAINER_WRITABLE_ROOT_MB`) only where the storage driver can
 * cap its size, else the worker refuses to start; tasks run with a read-only root by default.
 * Then the engine's CPU count, which bounds what a task is given (Docker refuses more).
 */
@Injectable()
export class ContainerLimits implements OnModuleInit {
  private readonly logger = new Logger(ContainerLimits.name);
  private cpus: Promise<number | undefined> | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly docker: DockerEngine,
  ) {}

  async onModuleInit(): Promise<void> {
    const mb = this.config.container.writableRootMb;
    if (mb === 0) return;
    const setting = `KILN_CONTAINER_WRITABLE_ROOT_MB=${mb}`;
    let problem: string | undefined;
    try {
      const info = await this.docker.info();
      problem = writableRootProblem(info) ?? (await this.docker.rootSizeCapProblem(mb));
    } catch (error) {
      problem = `the Docker engine could not be asked whether it can cap a container's size (${(error as Error).message})`;
    }
    if (problem) {
      throw new ConfigError(
        `${setting}: ${problem}. Unset it (or set 0) to run tasks with a read-only root filesystem and size-capped tmpfs mounts`,
      );
    }
    this.logger.log(`task containers get a writable root filesystem of at most ${mb} MiB`);
  }

  /** The engine's CPUs, asked once; undefined while it does not say. */
  async engineCpus(): Promise<number | undefined> {
    this.cpus ??= this.docker.info().then(
      (info) => info.cpus,
      () => {
        this.cpus = undefined;
        return undefined;
      },
    );
    return this.cpus;
  }
}

/**
 * Why the engine's storage driver cannot cap a container's root filesystem, or undefined when it
 * can (`StorageOpt size`): overlay2 on xfs (mounted with `pquota`, which only a container's
 * creation shows), btrfs, zfs. overlay2 on ext4, the usual set-up, cannot.
 */
export function writableRootProblem(info: EngineInfo): string | undefined {
  if (info.driver === 'overlay2' && info.backingFilesystem === 'xfs') return undefined;
  if (info.driver === 'btrfs' || info.driver === 'zfs') return undefined;
  const on = info.backingFilesystem ? ` on ${info.backingFilesystem}` : '';
  return `the engine's storage driver, ${info.driver}${on}, cannot cap the size of a container's root filesystem (that needs overlay2 on xfs mounted with pquota, btrfs or zfs)`;
}
