import type { TaskQueues } from '@kiln/queue';
import { TaskDelivery } from './task-delivery';
import type { Task } from './task.entity';
import type { TaskStamps } from './store/task-stamps';

const task = (id: string) => ({ id, projectId: 'p', cluster: 'default', priority: 1 }) as Task;

/** TaskDelivery's decisions with its store and the queue faked: what it calls, in order. */
function setup(queue: { fails?: boolean; missing?: string[] } = {}) {
  const calls: string[] = [];
  const stamps = {
    stamp: async (ids: string[]) => void calls.push(`stamp ${ids.join(',')}`),
    unstamp: async (ids: string[]) => (calls.push(`unstamp ${ids.join(',')}`), ids.length),
    recentlyStamped: async () => [task('a'), task('b')],
  } as unknown as TaskStamps;
  const queues = {
    enqueueMany: async (jobs: { taskId: string }[]) => {
      calls.push(`enqueue ${jobs.map((job) => job.taskId).join(',')}`);
      if (queue.fails) throw new Error('Redis away');
    },
    missingJobs: async () => queue.missing ?? [],
  } as unknown as TaskQueues;
  return { calls, delivery: new TaskDelivery(stamps, queues) };
}

describe('TaskDelivery', () => {
  it('stamps before it enqueues (a worker may park the task at once)', async () => {
    const { calls, delivery } = setup();
    await delivery.enqueueDue([task('a'), task('b')]);
    expect(calls).toEqual(['stamp a,b', 'enqueue a,b']);
  });

  it('does not stamp again what the insert stamped', async () => {
    const { calls, delivery } = setup();
    await delivery.enqueueDue([task('a')], { stamped: true });
    expect(calls).toEqual(['enqueue a']);
  });

  it('leaves to the reconciler what Redis did not take: the stamp is cleared, nothing thrown', async () => {
    const { calls, delivery } = setup({ fails: true });
    await delivery.enqueueDue([task('a')], { stamped: true });
    expect(calls).toEqual(['enqueue a', 'unstamp a']);
  });

  it('does nothing for no tasks', async () => {
    const { calls, delivery } = setup();
    await delivery.enqueueDue([]);
    expect(calls).toEqual([]);
  });

  it('clears the stamps of recently stamped tasks whose job is not in Redis, and only those', async () => {
    const lost = setup({ missing: ['b'] });
    expect(await lost.delivery.unstampLostJobs(10)).toBe(1);
    expect(lost.calls).toEqual(['unstamp b']);
    const none = setup({ missing: [] });
    expect(await none.delivery.unstampLostJobs(10)).toBe(0);
    expect(none.calls).toEqual([]);
  });
});
