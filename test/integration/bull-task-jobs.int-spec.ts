import Bull, { Job, Queue, QueueOptions } from 'bull';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { newId } from '@kiln/common';
import { TaskJob, TaskQueues } from '@kiln/queue';
import { kilnQueueOptions, testRedisUrl } from '../support/redis';

/**
 * `TaskQueues.enqueueMany` writes Bull jobs with its own Lua script (libs/queue/src/bull-task-jobs.ts)
 * instead of Bull's `addBulk`. These tests hold it to Bull's layout against the real Redis: the
 * keys and hash fields it writes are the ones Bull writes for the same job, and Bull's API and
 * Bull's own worker read such a job. The worker takes jobs with a Lua script of its own too
 * (libs/queue/src/task-claims.ts), tested here against the same layout. A `bull` upgrade that changes the
 * layout fails here.
 */
describe('task jobs written by Kiln’s Lua script are Bull jobs', () => {
  const redisUrl = testRedisUrl();
  const redis = new Redis(redisUrl);
  const prefixes: string[] = [];
  const opened: { close(): Promise<void> }[] = [];
  // Bull leaves connections it got from createClient open: the test closes them.
  const connections: Redis[] = [];
  const projectId = newId();

  /** Queue options as QueueModule gives them: one shared client and subscriber. */
  const options = (prefix: string): QueueOptions => kilnQueueOptions(redisUrl, prefix, connections);

  function newPrefix(): string {
    const prefix = `kiln-test-bulljobs-${randomBytes(4).toString('hex')}`;
    prefixes.push(prefix);
    return prefix;
  }

  /** Kiln's queues under a prefix of their own. */
  function kilnQueues(): { queues: TaskQueues; prefix: string } {
    const prefix = newPrefix();
    const queues = new TaskQueues(options(prefix));
    opened.push({ close: () => queues.onApplicationShutdown() });
    return { queues, prefix };
  }

  /** A plain Bull queue of the same name, as Bull itself would use it. */
  function bullQueue(prefix: string, name = 'tasks.default.p0'): Queue<TaskJob> {
    const queue = new Bull<TaskJob>(name, options(prefix));
    opened.push({ close: () => queue.close() });
    return queue;
  }

  async function keysUnder(prefix: string): Promise<string[]> {
    const keys = await redis.keys(`${prefix}:*`);
    return keys.map((key) => key.slice(prefix.length + 1)).sort();
  }

  const enqueue = (queues: TaskQueues, ids: string[], priority: 0 | 1 | 2 = 0) =>
    queues.enqueueMany(ids.map((taskId) => ({ taskId, projectId, cluster: 'default', priority })));

  afterAll(async () => {
    for (const queue of opened) await queue.close();
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    redis.disconnect();
    for (const connection of connections) connection.disconnect();
  });

  it('writes the keys and hash fields Bull’s addBulk writes for the same job', async () => {
    const ids = [newId(), newId(), newId()];
    const { queues, prefix } = kilnQueues();
    await enqueue(queues, ids);

    const reference = newPrefix();
    const bull = bullQueue(reference);
    await bull.addBulk(
      ids.map((taskId) => ({
        data: { taskId, projectId },
        opts: { jobId: taskId, removeOnComplete: true, removeOnFail: true },
      })),
    );

    // Bull also bumps the `id` counter, which only orders delayed jobs; Kiln leaves it alone.
    expect(await keysUnder(prefix)).toEqual(
      (await keysUnder(reference)).filter((key) => key !== 'tasks.default.p0:id'),
    );
    expect(await redis.lrange(`${prefix}:tasks.default.p0:wait`, 0, -1)).toEqual(
      await redis.lrange(`${reference}:tasks.default.p0:wait`, 0, -1),
    );
    for (const id of ids) {
      const ours = await redis.hgetall(`${prefix}:tasks.default.p0:${id}`);
      const theirs = await redis.hgetall(`${reference}:tasks.default.p0:${id}`);
      expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
      // Timestamps differ by the time between the two adds; everything else is byte for byte.
      const withoutTime = (hash: Record<string, string>) => ({
        ...hash,
        timestamp: 'T',
        opts: hash.opts.replace(/"timestamp":\d+/, '"timestamp":T'),
      });
      expect(withoutTime(ours)).toEqual(withoutTime(theirs));
      expect(Math.abs(Number(ours.timestamp) - Number(theirs.timestamp))).toBeLessThan(60_000);
      expect(ours.opts).toContain(`"timestamp":${ours.timestamp}}`);
    }
  });

  it('Bull’s API reads the job back: getJob, counts, waiting state', async () => {
    const id = newId();
    const { queues, prefix } = kilnQueues();
    await enqueue(queues, [id], 2);
    const bull = bullQueue(prefix, 'tasks.default.p2');
    const job = await bull.getJob(id);
    expect(job).not.toBeNull();
    expect(String(job!.id)).toBe(id);
    expect(job!.name).toBe('__default__');
    expect(job!.data).toEqual({ taskId: id, projectId });
    expect(job!.opts).toMatchObject({
      jobId: id,
      removeOnComplete: true,
      removeOnFail: true,
      attempts: 1,
      delay: 0,
    });
    expect(job!.attemptsMade).toBe(0);
    expect(await job!.isWaiting()).toBe(true);
    expect(await bull.getWaitingCount()).toBe(1);
    // The reconciler's check for lost enqueues sees it too.
    expect(await queues.missingJobs([{ id, cluster: 'default', priority: 2 }])).toEqual([]);
  });

  it('the worker’s claim takes jobs most urgent first, first in first out, and leaves no job', async () => {
    const { queues, prefix } = kilnQueues();
    const low = [newId(), newId()];
    const high = [newId(), newId()];
    const middle = [newId()];
    await enqueue(queues, low, 0);
    await enqueue(queues, high, 2);
    await enqueue(queues, middle, 1);
    const first = await queues.claim('default', 'w1', 3, []);
    expect(first.map((job) => job.taskId)).toEqual([...high, ...middle]);
    for (const job of first) {
      expect(JSON.parse(job.data)).toEqual({ taskId: job.taskId, projectId });
    }
    const rest = await queues.claim('default', 'w1', 10, []);
    expect(rest.map((job) => job.taskId)).toEqual(low);
    expect(await queues.claim('default', 'w1', 10, [])).toEqual([]);
    // Nothing of the jobs is left in Redis; each delivery is a claim of worker w1.
    const keys = await keysUnder(prefix);
    expect(keys.filter((key) => /^tasks\./.test(key) && !/:(id|meta.*)$/.test(key))).toEqual([]);
    expect(
      await queues.missingJobs(low.map((id) => ({ id, cluster: 'default', priority: 0 }))),
    ).toEqual(low);
    const claims = await redis.zrange(`${prefix}:task-claims`, 0, -1);
    expect(claims.sort()).toEqual([...low, ...high, ...middle].map((id) => `${id}:w1`).sort());
  });

  it('a claim stays until the worker settles it; a stale one is found by its age', async () => {
    const { queues, prefix } = kilnQueues();
    const ids = [newId(), newId()];
    await enqueue(queues, ids);
    await queues.claim('default', 'w1', 2, []);
    expect(await queues.staleClaims(60_000, 10)).toEqual([]);
    // Settled claims go with the worker's next call, even one that claims nothing.
    expect(await queues.claim('default', 'w1', 0, [ids[0]])).toEqual([]);
    // Another worker's settlement does not drop w1's claim.
    await queues.claim('default', 'w2', 0, [ids[1]]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const stale = await queues.staleClaims(10, 10);
    expect(stale).toEqual([{ taskId: ids[1], member: `${ids[1]}:w1` }]);
    await queues.dropClaims(stale);
    expect(await redis.zcard(`${prefix}:task-claims`)).toBe(0);
  });

  it('a claim skips a queue Bull paused, and a job whose hash is gone', async () => {
    const { queues, prefix } = kilnQueues();
    const paused = newId();
    const gone = newId();
    const ready = newId();
    await enqueue(queues, [paused], 2);
    await bullQueue(prefix, 'tasks.default.p2').pause();
    await enqueue(queues, [gone, ready], 0);
    await redis.del(`${prefix}:tasks.default.p0:${gone}`);
    const jobs = await queues.claim('default', 'w1', 10, []);
    expect(jobs.map((job) => job.taskId)).toEqual([ready]);
    expect(await redis.lrange(`${prefix}:tasks.default.p2:paused`, 0, -1)).toEqual([paused]);
  });

  it('a Bull worker (queue.process) runs the job, and global:waiting fires for it', async () => {
    const id = newId();
    const { queues, prefix } = kilnQueues();
    const bull = bullQueue(prefix);
    const waiting = new Promise<string>((resolve) => {
      void bull.on('global:waiting', (jobId: string) => resolve(String(jobId)));
    });
    // Subscribed before the add, so the event cannot be missed.
    await new Promise((resolve) => bull.once('registered:global:waiting', resolve));
    const processed = new Promise<TaskJob>((resolve) => {
      void bull.process(async (job: Job<TaskJob>) => resolve(job.data));
    });
    await enqueue(queues, [id]);
    expect(await waiting).toBe(id);
    expect(await processed).toEqual({ taskId: id, projectId });
    // removeOnComplete: the job is gone once Bull's worker completed it.
    for (let i = 0; i < 50 && (await bull.getJob(id)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await bull.getJob(id)).toBeNull();
  });

  it('skips ids already in the queue, and fills `paused` while the queue is paused', async () => {
    const { queues, prefix } = kilnQueues();
    const first = newId();
    await enqueue(queues, [first]);
    await enqueue(queues, [first]);
    expect(await redis.lrange(`${prefix}:tasks.default.p0:wait`, 0, -1)).toEqual([first]);

    const bull = bullQueue(prefix);
    await bull.pause();
    const second = newId();
    await enqueue(queues, [second]);
    expect(await redis.lrange(`${prefix}:tasks.default.p0:paused`, 0, -1)).toEqual([second, first]);
    await bull.resume();
    expect(await bull.getWaitingCount()).toBe(2);
    expect((await bull.getJob(second))!.data).toEqual({ taskId: second, projectId });
  });

  it('refuses job data whose ids are not ids', async () => {
    const { queues } = kilnQueues();
    await expect(
      queues.enqueueMany([{ taskId: 'x"}', projectId, cluster: 'default', priority: 0 }]),
    ).rejects.toThrow(/not a task or project id/);
  });
});
