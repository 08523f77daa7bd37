/** Settles like `promise`, or rejects with `message` once `ms` have passed; the timer never lingers. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Settles like `promise`, or rejects with `signal`'s reason once it is aborted (at once if it
 * already is). `promise` goes on; whoever started it decides whether to stop it.
 */
export async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let stop: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        stop = () => reject(signal.reason as Error);
        signal.addEventListener('abort', stop, { once: true });
      }),
    ]);
  } finally {
    if (stop) signal.removeEventListener('abort', stop);
  }
}
