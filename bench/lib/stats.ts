export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Count, min, p50/p90/p99, max and mean, rounded to `digits`. */
export function summarize(values: number[], digits = 1): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const factor = 10 ** digits;
  const r = (value: number): number => Math.round(value * factor) / factor;
  return {
    n: sorted.length,
    min: r(sorted[0] ?? NaN),
    p50: r(percentile(sorted, 50)),
    p90: r(percentile(sorted, 90)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted[sorted.length - 1] ?? NaN),
    mean: r(sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1)),
  };
}

/**
 * Runs `count` units of work in batches of `batch` from `clients` concurrent loops; returns the
 * wall time and each batch's own time (ms).
 */
export async function runBatches(
  count: number,
  batch: number,
  clients: number,
  work: (size: number, index: number) => Promise<void>,
  beforeEach?: () => void,
): Promise<{ ms: number; batchMs: number[] }> {
  const batches = Math.ceil(count / batch);
  const batchMs: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(clients, batches) }, async () => {
      for (;;) {
        const index = next++;
        if (index >= batches) return;
        beforeEach?.();
        const size = Math.min(batch, count - index * batch);
        const t0 = performance.now();
        await work(size, index);
        batchMs.push(performance.now() - t0);
      }
    }),
  );
  return { ms: performance.now() - started, batchMs };
}
