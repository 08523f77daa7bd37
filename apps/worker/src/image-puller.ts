import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { DockerEngine, RegistryLogin } from '@kiln/docker';
import {
  CredentialsService,
  PulledImagesStore,
  projectPrefix,
  registryHostOf,
  repositoryOf,
} from '@kiln/images';

const PRESENT_MS = 60_000;
/** The collector looks for unused images this often at most (sooner when the GC time is short). */
const MAX_SWEEP_MS = 60_000;

/** A pull that failed; `message` says why in words a user can act on. */
export class PullError extends Error {
  override name = 'PullError';
}

/**
 * Makes sure a task's image is in the local engine: an image already present is not pulled, and
 * tasks of one project needing the same image share one pull. Pulls use the project's stored login
 * for the image's registry (or Kiln's own for the project's uploads in the platform registry).
 *
 * Images this worker pulled are remembered (in Postgres, so across restarts) and removed once
 * unused for KILN_IMAGE_GC_SECONDS; images it did not pull are never touched.
 */
@Injectable()
export class ImagePuller implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ImagePuller.name);
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly present = new Map<string, number>();
  /** Tasks holding each image now (between `acquire` and `release`). */
  private readonly inUse = new Map<string, number>();
  /** When each image was last released, not yet written to Postgres. */
  private readonly lastUsed = new Map<string, Date>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly docker: DockerEngine,
    private readonly credentials: CredentialsService,
    private readonly pulled: PulledImagesStore,
  ) {}

  onApplicationBootstrap(): void {
    const gcMs = this.config.images.gcSeconds * 1000;
    if (gcMs === 0) return;
    this.sweeper = setInterval(
      () => {
        this.sweeping ??= this.collect()
          .catch((error: Error) => this.logger.warn(`image collection failed: ${error.message}`))
          .finally(() => (this.sweeping = undefined));
      },
      Math.min(gcMs, MAX_SWEEP_MS),
    );
    this.sweeper.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    await this.sweeping;
  }

  /** Makes sure `ref` is present for a task of `projectId` and holds it until `release(ref)`. */
  async acquire(ref: string, projectId: string): Promise<void> {
    this.inUse.set(ref, (this.inUse.get(ref) ?? 0) + 1);
    try {
      await this.ensure(ref, projectId);
    } catch (error) {
      this.release(ref);
      throw error;
    }
  }

  release(ref: string): void {
    const holders = (this.inUse.get(ref) ?? 1) - 1;
    if (holders > 0) this.inUse.set(ref, holders);
    else this.inUse.delete(ref);
    this.lastUsed.set(ref, new Date());
  }

  private async ensure(ref: string, projectId: string): Promise<void> {
    // An image seen a moment ago is still there: one inspect per image per minute, not per task.
    if ((this.present.get(ref) ?? 0) > Date.now()) return;
    if (await this.docker.hasImage(ref)) {
      this.present.set(ref, Date.now() + PRESENT_MS);
      return;
    }
    const key = `${projectId} ${ref}`;
    let pull = this.inFlight.get(key);
    if (!pull) {
      pull = this.pull(ref, projectId).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pull);
    }
    await pull;
  }

  private async pull(ref: string, projectId: string): Promise<void> {
    const host = registryHostOf(ref);
    const login = await this.loginFor(ref, host, projectId);
    try {
      await this.docker.pull(ref, login);
    } catch (error) {
      throw new PullError(pullFailure(host, (error as Error).message, login !== undefined));
    }
    this.present.set(ref, Date.now() + PRESENT_MS);
    await this.pulled.touch(this.config.worker.id, ref, new Date());
  }

  private async loginFor(
    ref: string,
    host: string,
    projectId: string,
  ): Promise<RegistryLogin | undefined> {
    const platform = this.config.registry;
    if (platform && host === platform.host.toLowerCase()) {
      const repository = repositoryOf(ref);
      if (repository.startsWith('kiln/')) {
        if (!repository.startsWith(projectPrefix(projectId))) {
          throw new PullError("the image belongs to another project's uploads");
        }
        return platform.username !== undefined
          ? { username: platform.username, password: platform.password ?? '', serveraddress: host }
          : undefined;
      }
    }
    try {
      return (await this.credentials.authFor(projectId, host)) ?? undefined;
    } catch (error) {
      throw new PullError((error as Error).message);
    }
  }

  /** Removes the images this worker pulled that no task used for KILN_IMAGE_GC_SECONDS. */
  async collect(): Promise<void> {
    const workerId = this.config.worker.id;
    for (const [ref, at] of [...this.lastUsed]) {
      this.lastUsed.delete(ref);
      await this.pulled.touchIfKnown(workerId, ref, at);
    }
    const cutoff = new Date(Date.now() - this.config.images.gcSeconds * 1000);
    for (const image of await this.pulled.unusedSince(workerId, cutoff)) {
      const ref = image.image;
      // A pull in flight is for an `acquire`, which holds the image already.
      if (this.inUse.has(ref)) continue;
      if (await this.docker.removeImage(ref)) {
        this.present.delete(ref);
        await this.pulled.forget(workerId, ref);
        this.logger.log(`removed image ${ref}, unused since ${image.lastUsedAt.toISOString()}`);
      }
    }
  }
}

/** What went wrong with a pull, in words a user can act on, the engine's own message after. */
function pullFailure(host: string, reason: string, hadLogin: boolean): string {
  const detail = reason.replace(/^\(HTTP code \d+\) [a-z ]+- /, '').trim();
  if (
    /unauthorized|authentication required|no basic auth credentials|denied|forbidden/i.test(detail)
  ) {
    const hint = hadLogin
      ? `the project's credentials for ${host} were refused`
      : `store a login for ${host} with POST /2/projects/{project_id}/credentials`;
    return `access denied by the registry (${hint}): ${detail}`;
  }
  if (/not found|manifest unknown|does not exist|no such/i.test(detail)) {
    return `image not found in ${host}: ${detail}`;
  }
  return detail;
}
