import { loadConfig } from '@kiln/config';
import type { DockerEngine } from '@kiln/docker';
import type { KilnMetrics } from '@kiln/metrics';
import type { ConfirmedImage, PulledImagesStore } from '@kiln/images';
import { ImagePuller, PullError } from './image-puller';

const config = loadConfig({
  DATABASE_URL: 'postgres://u:p@127.0.0.1/db',
  REDIS_URL: 'redis://127.0.0.1',
  KILN_IMAGE_MAX_BYTES: String(10 * 1024 * 1024),
});

/** An engine whose pulls end when the test says, or when aborted (as Docker's do). */
class FakeEngine {
  readonly images = new Map<string, number>();
  readonly pulls: { ref: string; signal: AbortSignal; finish: (size: number) => void }[] = [];
  readonly progress: ((bytes: number) => void)[] = [];
  removed: string[] = [];

  hasImage(ref: string): Promise<boolean> {
    return Promise.resolve(this.images.has(ref));
  }
  image(ref: string): Promise<{ size: number; volumes: string[] } | undefined> {
    const size = this.images.get(ref);
    return Promise.resolve(size === undefined ? undefined : { size, volumes: ['/data'] });
  }
  pull(
    ref: string,
    _login: unknown,
    signal: AbortSignal,
    onProgress: (bytes: number) => void,
  ): Promise<void> {
    this.progress.push(onProgress);
    return new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason as Error));
      this.pulls.push({
        ref,
        signal,
        finish: (size) => {
          this.images.set(ref, size);
          resolve();
        },
      });
    });
  }
  removeImage(ref: string): Promise<boolean> {
    this.removed.push(ref);
    this.images.delete(ref);
    return Promise.resolve(true);
  }
}

const store = {
  touch: () => Promise.resolve(),
  forget: () => Promise.resolve(),
} as unknown as PulledImagesStore;

const image: ConfirmedImage = {
  image: 'reg.example/a/b:1',
  pull: 'reg.example/a/b:1',
  login: undefined,
};
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ImagePuller', () => {
  let engine: FakeEngine;
  let puller: ImagePuller;
  beforeEach(() => {
    engine = new FakeEngine();
    puller = new ImagePuller(config, engine as unknown as DockerEngine, store, {
      enabled: false,
    } as KilnMetrics);
  });

  it('tasks share one pull; one that stops waiting leaves it to the others', async () => {
    const first = new AbortController();
    const second = new AbortController();
    const a = puller.acquire(image, first.signal);
    const b = puller.acquire(image, second.signal);
    await tick();
    expect(engine.pulls).toHaveLength(1);
    first.abort(new Error('cancelled'));
    await expect(a).rejects.toThrow('cancelled');
    expect(engine.pulls[0].signal.aborted).toBe(false);
    engine.pulls[0].finish(1000);
    await expect(b).resolves.toEqual({ size: 1000, volumes: ['/data'] });
  });

  it('the pull is stopped at the engine once no task waits for it, and a new task starts another', async () => {
    const tasks = [new AbortController(), new AbortController()];
    const waits = tasks.map((task) => puller.acquire(image, task.signal));
    await tick();
    tasks[0].abort(new Error('cancelled'));
    tasks[1].abort(new Error('timed out'));
    await expect(waits[0]).rejects.toThrow('cancelled');
    await expect(waits[1]).rejects.toThrow('timed out');
    expect(engine.pulls[0].signal.aborted).toBe(true);
    expect(engine.pulls[0].signal.reason).toBeInstanceOf(PullError);
    const later = puller.acquire(image, new AbortController().signal);
    await tick();
    expect(engine.pulls).toHaveLength(2);
    expect(engine.pulls[1].signal.aborted).toBe(false);
    engine.pulls[1].finish(1000);
    await later;
  });

  it('a task whose signal is already aborted does not start a pull', async () => {
    const stopped = new AbortController();
    stopped.abort(new Error('cancelled'));
    await expect(puller.acquire(image, stopped.signal)).rejects.toThrow('cancelled');
    expect(engine.pulls).toHaveLength(0);
  });

  it('stops a pull whose layers add up to more than the cap, for every task waiting', async () => {
    const waits = [1, 2].map(() => puller.acquire(image, new AbortController().signal));
    await tick();
    engine.progress[0](4 * 1024 * 1024);
    expect(engine.pulls[0].signal.aborted).toBe(false);
    engine.progress[0](11 * 1024 * 1024);
    expect(engine.pulls[0].signal.aborted).toBe(true);
    for (const wait of waits) {
      await expect(wait).rejects.toThrow(
        "the image is too big: its layers add up to at least 11.0 MiB (11534336 bytes) compressed, over this server's cap of 10.0 MiB (10485760 bytes, KILN_IMAGE_MAX_BYTES)",
      );
    }
  });

  it('an image found over the cap once pulled is refused and removed; one it did not pull is kept', async () => {
    const wait = puller.acquire(image, new AbortController().signal);
    await tick();
    engine.pulls[0].finish(20 * 1024 * 1024);
    await expect(wait).rejects.toThrow(/the image is too big: it is 20\.0 MiB/);
    expect(engine.removed).toEqual([image.image]);

    const shared = { image: 'kiln-test/big:1', pull: 'kiln-test/big:1', login: undefined };
    engine.images.set(shared.image, 20 * 1024 * 1024);
    await expect(puller.acquire(shared, new AbortController().signal)).rejects.toThrow(/too big/);
    expect(engine.removed).toEqual([image.image]);
  });
});
