import type { KilnConfig } from '@kiln/config';
import type { KilnMetrics } from '@kiln/metrics';
import type { TaskQueues } from '@kiln/queue';
import type { RedisEpoch } from '@kiln/redis';
import type { Task, TaskDelivery, TaskLifecycle } from '@kiln/tasks';
import type { DatabaseContact } from './database-contact';
import { Reconciler } from './reconciler';

/** The reconciler's decisions with its stores faked: what it asks them to do, and when. */
function setup(options: { contactSeconds: number; redisLost?: boolean; due?: number }) {
  const calls: string[] = [];
  let due = options.due ?? 0;
  const delivery = {
    unstampAll: async () => (calls.push('unstampAll'), 3),
    unstampLostJobs: async () => (calls.push('unstampLostJobs'), 0),
    unstamp: async (ids: string[]) => (calls.push(`unstamp ${ids.join(',')}`), ids.length),
    findUnenqueued: async (limit: number) => {
      const batch = Array.from({ length: Math.min(limit, due) }, () => ({}) as Task);
      due -= batch.length;
      return batch;
    },
    enqueueDue: async (tasks: Task[]) => void calls.push(`enqueue ${tasks.length}`),
  } as unknown as TaskDelivery;
  const lifecycle = {
    recoverLapsed: async (lapse: number, attempts: number) => {
      calls.push(`recoverLapsed ${lapse} ${attempts}`);
      return { requeued: 1, failed: [] };
    },
  } as unknown as TaskLifecycle;
  const queues = {
    staleClaims: async () => [{ taskId: 'a', member: 'a:w1' }],
    dropClaims: async (claims: { member: string }[]) =>
      void calls.push(`dropClaims ${claims.map((c) => c.member).join(',')}`),
  } as unknown as TaskQueues;
  const epoch = { renewed: async () => options.redisLost ?? false } as unknown as RedisEpoch;
  const contact = { unbrokenSeconds: () => options.contactSeconds } as DatabaseContact;
  const metrics = { taskFinished: () => undefined } as unknown as KilnMetrics;
  const config = {
    scheduler: { heartbeatLapseSeconds: 60, maxAttempts: 3, claimStaleSeconds: 120 },
  } as KilnConfig;
  return {
    calls,
    reconciler: new Reconciler(config, delivery, lifecycle, epoch, queues, contact, metrics),
  };
}

describe('Reconciler', () => {
  it('re-queues lapsed tasks only after a whole lapse of unbroken database contact', async () => {
    const early = setup({ contactSeconds: 59.9 });
    await early.reconciler.reconcile();
    expect(early.calls.filter((call) => call.startsWith('recoverLapsed'))).toEqual([]);

    const later = setup({ contactSeconds: 60 });
    await later.reconciler.reconcile();
    expect(later.calls).toContain('recoverLapsed 60 3');
  });

  it('re-enqueues every queued task only when Redis lost its data', async () => {
    const kept = setup({ contactSeconds: 0 });
    await kept.reconciler.reconcile();
    expect(kept.calls).not.toContain('unstampAll');
    const lost = setup({ contactSeconds: 0, redisLost: true });
    await lost.reconciler.reconcile();
    expect(lost.calls[0]).toBe('unstampAll');
  });

  it('queues again the tasks of stale claims, then drops the claims', async () => {
    const { calls, reconciler } = setup({ contactSeconds: 0 });
    await reconciler.reconcile();
    expect(calls.indexOf('unstamp a')).toBeLessThan(calls.indexOf('dropClaims a:w1'));
  });

  it('enqueues due tasks in batches until none is left', async () => {
    const { calls, reconciler } = setup({ contactSeconds: 0, due: 1200 });
    await reconciler.reconcile();
    expect(calls.filter((call) => call.startsWith('enqueue'))).toEqual([
      'enqueue 500',
      'enqueue 500',
      'enqueue 200',
    ]);
  });
});
