import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { untilAborted } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import { DockerEngine, ImageFacts, RegistryLogin } from '@kiln/docker';
import { accessHint, ConfirmedImage, PulledImagesStore, registryHostOf } from '@kiln/images';

const PRESENT_MS = 60_000;
/** The collector looks for unused images this often at most (sooner when the GC time is short). */
const MAX_SWEEP_MS = 60_000;

/** A pull that failed; `message` says why in words a user can act on. */
export class PullError extends Error {
  override name = 'PullError';
}

/** One pull of a reference, shared by the tasks waiting for it. */
interface SharedPull {
  done: Promise<void>;
  /** Tasks waiting for it now; when none is left before it ends, it is stopped. */
  waiters: number;
  settled: boolean;
  abort: AbortController;
}

/**
 * Makes sure a task's image, as `ImageAccess` confirmed it for the task's project, is in the local
 * engine: an image already present is not pulled, and tasks needing the same image share one
 * pull, made with the login `ImageAccess` chose (the project's, or Kiln's own for the project's
 * uploads in the platform registry).
 *
 * A task stops waiting when its signal is aborted (cancelled, or past KILN_PULL_TIMEOUT_SECONDS);
 * a pull goes on while another task waits for it, and is stopped at the engine once none does.
 * No image over KILN_IMAGE_MAX_BYTES runs: a pull stops as soon as the sizes of the layers it
 * downloads add up to more, and an image found bigger once pulled (layers compress) is removed.
 *
 * Images this worker pulled are remembered (in Postgres, so across restarts) and removed once
 * unused for KILN_IMAGE_GC_SECONDS; images it did not pull are never touched.
 */
@Injectable()
export class ImagePuller implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ImagePuller.name);
  private readonly inFlight = new Map<string, SharedPull>();
  /** Images seen present, until when, with their facts. */
  private readonly present = new Map<string, { until: number; facts: ImageFacts }>();
  /** Tasks holding each image now (between `acquire` and `release`). */
  private readonly inUse = new Map<string, number>();
  /** When each image was last released, not yet written to Postgres. */
  private readonly lastUsed = new Map<string, Date>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly docker: DockerEngine,
    private readonly pulled: PulledImagesStore,
    private readonly metrics: KilnMetrics,
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

  /**
   * Makes sure the confirmed image is present and holds it until `release(image.pull)`; resolves
   * with what the container needs to know of it. Rejects with `signal`'s reason once it is aborted.
   */
  async acquire(image: ConfirmedImage, signal: AbortSignal): Promise<ImageFacts> {
    const ref = image.pull;
    this.inUse.set(ref, (this.inUse.get(ref) ?? 0) + 1);
    try {
      return await this.ensure(image, signal);
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

  private async ensure(image: ConfirmedImage, signal: AbortSignal): Promise<ImageFacts> {
    // An image seen a moment ago is still there: one inspect per image per minute, not per task.
    const known = this.present.get(image.image);
    if (known && known.until > Date.now()) return known.facts;
    // The name as registered is pulled too when only the digest is here (from another name's
    // pull), so the engine holds what a `docker pull` would and the collector can remove it.
    const missing = async (ref: string) => !(await this.docker.hasImage(ref));
    let pulled = false;
    if (
      (await missing(image.image)) ||
      (image.pull !== image.image && (await missing(image.pull)))
    ) {
      await this.shared(image.pull, image.login, signal);
      // The tag moved on since the registry confirmed the digest: the digest itself, then.
      if (await missing(image.image)) await this.shared(image.image, image.login, signal);
      pulled = true;
    }
    const facts = await this.docker.image(image.image);
    // Removed meanwhile (found too big by another task waiting for the same pull, or collected).
    if (!facts) throw new PullError('the image went away from the engine after its pull');
    const cap = this.config.images.maxBytes;
    if (facts.size > cap) {
      // Only what this worker just pulled goes: an image someone else put there is theirs.
      if (pulled) await this.removeOversized(image);
      throw new PullError(tooBig(facts.size, cap));
    }
    this.present.set(image.image, { until: Date.now() + PRESENT_MS, facts });
    return facts;
  }

  /**
   * One pull of `ref` at a time, shared by the tasks waiting for it; this task stops waiting when
   * `signal` is aborted, and the pull is stopped when no task waits for it any more.
   */
  private async shared(
    ref: string,
    login: RegistryLogin | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    signal.throwIfAborted();
    let pull = this.inFlight.get(ref);
    if (!pull) {
      const abort = new AbortController();
      const started: SharedPull = { done: Promise.resolve(), waiters: 0, settled: false, abort };
      // Settled before any waiter hears of it, so that the last one out does not stop it.
      started.done = this.pull(ref, login, abort).finally(() => {
        started.settled = true;
        if (this.inFlight.get(ref) === started) this.inFlight.delete(ref);
      });
      // Its end is heard by the tasks waiting; one stopped with no task left is heard by none.
      started.done.catch(() => undefined);
      this.inFlight.set(ref, started);
      pull = started;
    }
    pull.waiters++;
    try {
      await untilAborted(pull.done, signal);
    } finally {
      pull.waiters--;
      if (pull.waiters === 0 && !pull.settled) {
        this.inFlight.delete(ref);
        pull.abort.abort(new PullError('no task waits for this pull any more'));
        this.logger.log(`stopped pulling ${ref}: no task waits for it any more`);
      }
    }
  }

  private async pull(
    ref: string,
    login: RegistryLogin | undefined,
    abort: AbortController,
  ): Promise<void> {
    const host = registryHostOf(ref);
    const cap = this.config.images.maxBytes;
    let tooLarge = false;
    try {
      await this.docker.pull(ref, login, abort.signal, (downloadBytes) => {
        // Compressed sizes: the image is at least this big once unpacked.
        if (downloadBytes > cap) {
          tooLarge = true;
          abort.abort(new PullError(tooBig(downloadBytes, cap, true)));
        }
      });
    } catch (error) {
      const stopped = abort.signal.aborted && abort.signal.reason instanceof PullError;
      this.countPull(tooLarge ? 'too_big' : stopped ? 'stopped' : 'error');
      if (stopped) throw abort.signal.reason;
      throw new PullError(pullFailure(host, (error as Error).message, login !== undefined));
    }
    this.countPull('ok');
    await this.pulled.touch(this.config.worker.id, ref, new Date());
  }

  /** `kiln_image_pulls_total{result}`. */
  private countPull(result: 'ok' | 'error' | 'too_big' | 'stopped'): void {
    if (this.metrics.enabled) this.metrics.imagePulls.inc({ result });
  }

  /** Removes an image this worker pulled that is over the size cap (kept if a container uses it). */
  private async removeOversized(image: ConfirmedImage): Promise<void> {
    const workerId = this.config.worker.id;
    for (const ref of new Set([image.pull, image.image])) {
      try {
        if (await this.docker.removeImage(ref)) await this.pulled.forget(workerId, ref);
      } catch (error) {
        this.logger.warn(`oversized image ${ref} not removed: ${(error as Error).message}`);
      }
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
        // `present` is keyed by the references tasks run (digests), not by what was pulled.
        this.present.clear();
        await this.pulled.forget(workerId, ref);
        this.logger.log(`removed image ${ref}, unused since ${image.lastUsedAt.toISOString()}`);
      }
    }
  }
}

/** The refusal of an image over KILN_IMAGE_MAX_BYTES, naming its size and the cap. */
function tooBig(bytes: number, cap: number, downloading = false): string {
  const size = downloading
    ? `its layers add up to at least ${formatBytes(bytes)} (${bytes} bytes) compressed`
    : `it is ${formatBytes(bytes)} (${bytes} bytes)`;
  return `the image is too big: ${size}, over this server's cap of ${formatBytes(cap)} (${cap} bytes, KILN_IMAGE_MAX_BYTES)`;
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** What went wrong with a pull, in words a user can act on, the engine's own message after. */
function pullFailure(host: string, reason: string, hadLogin: boolean): string {
  const detail = reason.replace(/^\(HTTP code \d+\) [a-z ]+- /, '').trim();
  if (
    /unauthorized|authentication required|no basic auth credentials|denied|forbidden/i.test(detail)
  ) {
    return `access denied by the registry (${accessHint(host, hadLogin)}): ${detail}`;
  }
  if (/not found|manifest unknown|does not exist|no such/i.test(detail)) {
    return `image not found in ${host}: ${detail}`;
  }
  return detail;
}
