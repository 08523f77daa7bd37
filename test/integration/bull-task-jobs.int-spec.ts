import Bull, { Job, Queue, QueueOptions } from 'bull';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { newId } from '@kiln/common';
import { TaskJob, TaskQueues, taskQueueName } from '@kiln/queue';
import { waitUntil } from '../support/kiln';
import { sleep } from '../support/processes';
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

  /** Project `owner`'s queue of the default cluster at `priority`. */
  const queueOf = (priority: 0 | 1 | 2, owner = projectId) =>
    taskQueueName('default', owner, priority);

  /** A plain Bull queue of the same name, as Bull itself would use it. */
  function bullQueue(prefix: string, name = queueOf(0)): Queue<TaskJob> {
    const queue = new Bull<TaskJob>(name, options(prefix));
    opened.push({ close: () => queue.close() });
    return queue;
  }

  async function keysUnder(prefix: string): Promise<string[]> {
    const keys = await redis.keys(`${prefix}:*`);
    return keys.map((key) => key.slice(prefix.length + 1)).sort();
  }

  const enqueue = (
    queues: TaskQueues,
    ids: string[],
    priority: 0 | 1 | 2 = 0,
    owner = projectId,
    cluster = 'default',
  ) => queues.enqueueMany(ids.map((taskId) => ({ taskId, projectId: owner, cluster, priority })));

  /** The keys of Bull's layout under `prefix`: without the cluster's ring, which is Kiln's own. */
  const bullKeysUnder = async (prefix: string) =>
    (await keysUnder(prefix)).filter((key) => !/^tasks\.[^/]*:ring/.test(key));

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
    expect(await bullKeysUnder(prefix)).toEqual(
      (await keysUnder(reference)).filter((key) => key !== `${queueOf(0)}:id`),
    );
    expect(await redis.lrange(`${prefix}:${queueOf(0)}:wait`, 0, -1)).toEqual(
      await redis.lrange(`${reference}:${queueOf(0)}:wait`, 0, -1),
    );
    for (const id of ids) {
      const ours = await redis.hgetall(`${prefix}:${queueOf(0)}:${id}`);
      const theirs = await redis.hgetall(`${reference}:${queueOf(0)}:${id}`);
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
    const bull = bullQueue(prefix, queueOf(2));
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
    expect(await queues.missingJobs([{ id, projectId, cluster: 'default', priority: 2 }])).toEqual(
      [],
    );
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
      await queues.missingJobs(
        low.map((id) => ({ id, projectId, cluster: 'default', priority: 0 as const })),
      ),
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
    // A fixed pause, nothing to poll for: w1's claim grows older than the 10 ms asked below.
    await sleep(20);
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
    await bullQueue(prefix, queueOf(2)).pause();
    await enqueue(queues, [gone, ready], 0);
    await redis.del(`${prefix}:${queueOf(0)}:${gone}`);
    const jobs = await queues.claim('default', 'w1', 10, []);
    expect(jobs.map((job) => job.taskId)).toEqual([ready]);
    expect(await redis.lrange(`${prefix}:${queueOf(2)}:paused`, 0, -1)).toEqual([paused]);
  });

  it('a Bull worker (queue.process) runs the job', async () => {
    const id = newId();
    const { queues, prefix } = kilnQueues();
    const bull = bullQueue(prefix);
    const processed = new Promise<TaskJob>((resolve) => {
      void bull.process(async (job: Job<TaskJob>) => resolve(job.data));
    });
    await enqueue(queues, [id]);
    expect(await processed).toEqual({ taskId: id, projectId });
    // removeOnComplete: the job is gone once Bull's worker completed it.
    await waitUntil('job removed', async () => (await bull.getJob(id)) === null, {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
  });

  it('wakes the workers of the job’s cluster, and only those', async () => {
    const { queues } = kilnQueues();
    let defaultWakes = 0;
    let otherWakes = 0;
    await queues.onWaiting('default', () => defaultWakes++);
    await queues.onWaiting('other', () => otherWakes++);
    await enqueue(queues, [newId(), newId()]);
    await waitUntil('default woken', () => defaultWakes > 0, { timeoutMs: 10_000, intervalMs: 20 });
    expect(defaultWakes).toBe(1);
    expect(otherWakes).toBe(0);
    await enqueue(queues, [newId()], 0, projectId, 'other');
    await waitUntil('other woken', () => otherWakes > 0, { timeoutMs: 10_000, intervalMs: 20 });
    expect(defaultWakes).toBe(1);
  });

  it('serves projects in turn: one project’s backlog does not hold another’s task', async () => {
    const { queues } = kilnQueues();
    const a = newId();
    const b = newId();
    const backlog = Array.from({ length: 5 }, () => newId());
    const single = newId();
    await enqueue(queues, backlog, 2, a);
    await enqueue(queues, [single], 0, b);
    // B's one task at the lowest priority comes second, not after A's five urgent ones.
    const first = await queues.claim('default', 'w1', 2, []);
    expect(first.map((job) => job.taskId)).toEqual([backlog[0], single]);
    const rest = await queues.claim('default', 'w1', 10, []);
    expect(rest.map((job) => job.taskId)).toEqual(backlog.slice(1));
  });

  it('rotates over every project with work, a job each, and orders each project by priority', async () => {
    const { queues, prefix } = kilnQueues();
    const owners = [newId(), newId(), newId()];
    const low = owners.map(() => [newId(), newId()]);
    const high = owners.map(() => newId());
    for (let i = 0; i < owners.length; i++) {
      await enqueue(queues, low[i], 0, owners[i]);
      await enqueue(queues, [high[i]], 2, owners[i]);
    }
    const order: string[] = [];
    for (let claimed = await queues.claim('default', 'w1', 1, []); claimed.length > 0;) {
      order.push(claimed[0].taskId);
      claimed = await queues.claim('default', 'w1', 1, []);
    }
    expect(order).toEqual([
      high[0],
      high[1],
      high[2],
      low[0][0],
      low[1][0],
      low[2][0],
      low[0][1],
      low[1][1],
      low[2][1],
    ]);
    // A project leaves the ring once it has nothing waiting.
    expect(await redis.llen(`${prefix}:tasks.default:ring`)).toBe(0);
    expect(await redis.scard(`${prefix}:tasks.default:ring-members`)).toBe(0);
  });

  it('takes the jobs of the queues shared before queues were per project first', async () => {
    const { queues, prefix } = kilnQueues();
    const old = newId();
    await bullQueue(prefix, 'tasks.default.p0').add(
      { taskId: old, projectId },
      { jobId: old, removeOnComplete: true, removeOnFail: true },
    );
    const fresh = newId();
    await enqueue(queues, [fresh], 2);
    expect(
      await queues.missingJobs([{ id: old, projectId, cluster: 'default', priority: 0 }]),
    ).toEqual([]);
    const jobs = await queues.claim('default', 'w1', 10, []);
    expect(jobs.map((job) => job.taskId)).toEqual([old, fresh]);
  });

  it('skips ids already in the queue, and fills `paused` while the queue is paused', async () => {
    const { queues, prefix } = kilnQueues();
    const first = newId();
    await enqueue(queues, [first]);
    await enqueue(queues, [first]);
    expect(await redis.lrange(`${prefix}:${queueOf(0)}:wait`, 0, -1)).toEqual([first]);

    const bull = bullQueue(prefix);
    await bull.pause();
    const second = newId();
    await enqueue(queues, [second]);
    expect(await redis.lrange(`${prefix}:${queueOf(0)}:paused`, 0, -1)).toEqual([second, first]);
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
