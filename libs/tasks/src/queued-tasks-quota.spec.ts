import type { ProjectLimits } from '@kiln/projects';
import type { TaskStore } from './store/task-store';
import {
  QueuedTasksQuota,
  RECOUNT_MAX_MS,
  RECOUNT_MIN_MS,
  recountAfterMs,
} from './queued-tasks-quota';

/** The quota with the count and the limit faked; counts the counts. */
function setup(queued: () => number, limit: number) {
  const counts = { n: 0 };
  const store = { countQueued: async () => (counts.n++, queued()) };
  const limits = { quota: async () => limit };
  const quota = new QueuedTasksQuota(
    store as unknown as TaskStore,
    limits as unknown as ProjectLimits,
  );
  return { quota, counts };
}

describe('recountAfterMs', () => {
  it('counts again every second near the quota, up to every 10 s far from it', () => {
    expect(recountAfterMs(-5)).toBe(RECOUNT_MIN_MS);
    expect(recountAfterMs(100)).toBe(RECOUNT_MIN_MS);
    expect(recountAfterMs(100_000)).toBe(5000);
    expect(recountAfterMs(1_000_000)).toBe(RECOUNT_MAX_MS);
  });
});

describe('QueuedTasksQuota', () => {
  it('counts once, adds what this process queues, and refuses past the quota with a 429', async () => {
    const { quota, counts } = setup(() => 3, 10);
    await quota.reserve('p', 5);
    const release = await quota.reserve('p', 2);
    await expect(quota.reserve('p', 1)).rejects.toThrow('Quota exceeded: queued_tasks is 10');
    expect(counts.n).toBe(1);
    release();
    await quota.reserve('p', 2);
  });

  it('requests arriving together share one count, so together they cannot pass the quota', async () => {
    const { quota, counts } = setup(() => 90, 100);
    const answers = await Promise.allSettled(
      Array.from({ length: 20 }, () => quota.reserve('p', 1)),
    );
    expect(answers.filter((answer) => answer.status === 'fulfilled')).toHaveLength(10);
    expect(counts.n).toBe(1);
  });

  it('a reservation made before a new count gives nothing back to it', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      const { quota } = setup(() => 5, 10);
      const release = await quota.reserve('p', 5);
      jest.setSystemTime(RECOUNT_MIN_MS);
      await quota.reserve('p', 5);
      // The new count (5) holds the second reservation: 10, full. The first gives back nothing.
      release();
      await expect(quota.reserve('p', 1)).rejects.toThrow(/queued_tasks/);
    } finally {
      jest.useRealTimers();
    }
  });

  it('counts each project on its own', async () => {
    const { quota } = setup(() => 0, 1);
    await quota.reserve('a', 1);
    await expect(quota.reserve('a', 1)).rejects.toThrow(/queued_tasks/);
    await quota.reserve('b', 1);
  });

  it('counts again once the count is old', async () => {
    jest.useFakeTimers({ now: 0 });
    try {
      let queued = 10;
      const { quota, counts } = setup(() => queued, 10);
      await expect(quota.reserve('p', 1)).rejects.toThrow(/queued_tasks/);
      queued = 0;
      jest.setSystemTime(RECOUNT_MIN_MS);
      await quota.reserve('p', 1);
      expect(counts.n).toBe(2);
    } finally {
      jest.useRealTimers();
    }
  });
});
