import type { KilnConfig } from '@kiln/config';
import type { PurgedBatch, TaskRetentionStore } from '@kiln/tasks';
import type { WebhookOutbox } from '@kiln/webhooks';
import type { DatabaseContact } from './database-contact';
import type { LeaderLease } from './leader-lease';
import { RetentionPurger } from './retention-purger';

/**
 * The purge's decisions with its stores faked: expired tasks in three projects, walked in
 * batches; what it asks the stores, and when it stops.
 */
function setup(options: { expired: Record<string, number>; finishedDeliveries?: number }) {
  const calls: string[] = [];
  const left = { ...options.expired };
  let deliveriesLeft = options.finishedDeliveries ?? 0;
  let leader = true;
  const tasks = {
    purgeBatch: async (from: string, days: number, limit: number): Promise<PurgedBatch> => {
      calls.push(`tasks from '${from}' ${days} d ${limit}`);
      let taken = 0;
      let last: string | null = null;
      for (const project of Object.keys(left).sort()) {
        if (project < from) continue;
        const take = Math.min(left[project], limit - taken);
        left[project] -= take;
        taken += take;
        if (take > 0) last = project;
        if (taken === limit) break;
      }
      return { tasks: taken, lastProjectId: last };
    },
  } as unknown as TaskRetentionStore;
  const outbox = {
    prune: async (days: number, limit: number) => {
      calls.push(`deliveries ${days} d ${limit}`);
      const taken = Math.min(deliveriesLeft, limit);
      deliveriesLeft -= taken;
      return taken;
    },
    pruneIdleEndpoints: async () => (calls.push('endpoints'), 0),
  } as unknown as WebhookOutbox;
  const lease = { isLeader: () => leader } as unknown as LeaderLease;
  const config = {
    retention: { taskDays: 30, batch: 10, pauseMs: 0, intervalSeconds: 300 },
    webhooks: { retentionDays: 7 },
  } as KilnConfig;
  const contact = { lost: () => undefined } as unknown as DatabaseContact;
  return {
    calls,
    left,
    purger: new RetentionPurger(config, lease, tasks, outbox, contact),
    loseLeadership: () => (leader = false),
  };
}

describe('RetentionPurger', () => {
  it('walks the projects in batches, each from the last project of the one before, until a batch is short', async () => {
    const { calls, left, purger } = setup({
      expired: { a: 4, b: 13, c: 5 },
      finishedDeliveries: 0,
    });
    const pass = await purger.pass();
    expect(calls.filter((call) => call.startsWith('tasks'))).toEqual([
      "tasks from '' 30 d 10", // a 4, b 6
      "tasks from 'b' 30 d 10", // b 7, c 3
      "tasks from 'c' 30 d 10", // c 2: short, done
    ]);
    expect(left).toEqual({ a: 0, b: 0, c: 0 });
    expect(pass).toEqual({ tasks: 22, deliveries: 0, complete: true });
  });

  it('then prunes finished deliveries past the webhook retention in batches, then idle endpoints', async () => {
    const { calls, purger } = setup({ expired: {}, finishedDeliveries: 25 });
    const pass = await purger.pass();
    expect(calls).toEqual([
      "tasks from '' 30 d 10",
      'deliveries 7 d 10',
      'deliveries 7 d 10',
      'deliveries 7 d 10',
      'endpoints',
    ]);
    expect(pass.deliveries).toBe(25);
    expect(pass.complete).toBe(true);
  });

  it('stops before the next batch once it no longer leads, and says the pass is not complete', async () => {
    const { calls, purger, loseLeadership } = setup({ expired: { a: 100 }, finishedDeliveries: 5 });
    const original = (purger as unknown as { tasks: TaskRetentionStore }).tasks;
    const purgeBatch = original.purgeBatch.bind(original);
    let batches = 0;
    original.purgeBatch = async (...args) => {
      if (++batches === 2) loseLeadership();
      return purgeBatch(...args);
    };
    const pass = await purger.pass();
    expect(calls.filter((call) => call.startsWith('tasks'))).toHaveLength(2);
    expect(calls.some((call) => call.startsWith('deliveries'))).toBe(false);
    expect(pass).toMatchObject({ tasks: 20, complete: false });
  });

  it('stops at shutdown: the batch in flight ends, no other starts', async () => {
    const { calls, purger } = setup({ expired: { a: 1000 } });
    const running = purger.pass();
    await purger.onApplicationShutdown();
    const pass = await running;
    expect(pass.complete).toBe(false);
    expect(calls.length).toBeLessThanOrEqual(2);
  });
});
