/**
 * Sleeps that can be cut short: a retry loop waits on `sleep`, and `stop` (at shutdown) ends every
 * wait at once; after it, `sleep` returns at once and `stopped` is true, so loops end.
 */
export class Sleeper {
  private readonly waiting = new Set<() => void>();
  private ended = false;

  get stopped(): boolean {
    return this.ended;
  }

  /** Resolves after `ms`, or as soon as the sleeper is stopped. */
  sleep(ms: number): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  /**
   * Calls `fn` (with the try's number, from 1) until it resolves. After a failure, `again(error,
   * tries)` says whether to try once more: false, or a stopped sleeper, rethrows the error. The
   * wait before try n + 1 is `waitMs(n)`, {@link backoffMs} unless given.
   */
  async retry<T>(
    fn: (tries: number) => Promise<T>,
    again: (error: unknown, tries: number) => boolean,
    waitMs: (tries: number) => number = backoffMs,
  ): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await fn(tries);
      } catch (error) {
        if (!again(error, tries) || this.ended) throw error;
        await this.sleep(waitMs(tries));
      }
    }
  }

  /** Ends every sleep now and every later one at once. */
  stop(): void {
    this.ended = true;
    for (const done of [...this.waiting]) done();
  }
}

/**
 * The waits of a retry loop: `firstMs`, doubling up to `maxMs`. The defaults are how the worker
 * retries through a Postgres outage (its status writes, its log, its outcomes): 0.5 s to 10 s.
 */
export function backoffMs(attempt: number, firstMs = 500, maxMs = 10_000): number {
  return Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt - 1));
}
