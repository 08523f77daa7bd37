import type { FeedMessage, TaskLogFeed } from '@kiln/redis';
import type { LogHead, Task, TaskStatus, TasksService } from '@kiln/tasks';
import type { FollowWatch, HeadListener } from './follow-watch';
import { TaskEnds } from './task-ends';

/** Postgres and Redis swapped for fields: the waiter's rules, nothing else. */
class Fakes {
  status: TaskStatus = 'queued';
  attempt = 1;
  listener: ((message: FeedMessage) => void) | undefined;
  subscribed = false;
  watchers = new Set<HeadListener>();
  redisDown = false;
  /** Reads of the task so far. */
  reads = 0;

  ends(): TaskEnds {
    const tasks = {
      get: async () => {
        this.reads++;
        return { id: 't', status: this.status, attempt: this.attempt } as Task;
      },
    } as unknown as TasksService;
    const feed = {
      subscribe: async (_id: string, listener: (message: FeedMessage) => void) => {
        if (this.redisDown) throw new Error('connect ECONNREFUSED');
        this.listener = listener;
        this.subscribed = true;
        return () => (this.subscribed = false);
      },
    } as unknown as TaskLogFeed;
    const watch = {
      watch: (_id: string, listener: HeadListener) => {
        this.watchers.add(listener);
        return () => this.watchers.delete(listener);
      },
    } as unknown as FollowWatch;
    return new TaskEnds(tasks, feed, watch);
  }

  /** One poll of the shared watch. */
  poll(head: LogHead | undefined = { status: this.status, attempt: this.attempt, lastSeq: 0 }) {
    for (const listener of this.watchers) listener(head);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('TaskEnds', () => {
  it('reads the task once when it starts waiting: an end published before it subscribed is not missed', async () => {
    const fakes = new Fakes();
    fakes.status = 'complete';
    const task = await fakes.ends().untilEnded('p', 't', new AbortController().signal);
    expect(task?.status).toBe('complete');
    expect(fakes.reads).toBe(1);
    expect(fakes.subscribed).toBe(false);
    expect(fakes.watchers.size).toBe(0);
  });

  it('waits without reading until the feed says the task ended, then answers it', async () => {
    const fakes = new Fakes();
    const waiting = fakes.ends().untilEnded('p', 't', new AbortController().signal);
    await tick();
    expect(fakes.reads).toBe(1);
    fakes.listener!({ kind: 'chunks', attempt: 1, chunks: [{ seq: 1, stream: 1, data: 'x' }] });
    fakes.poll(); // still queued: nothing to read
    await tick();
    expect(fakes.reads).toBe(1);
    fakes.status = 'error';
    fakes.listener!({ kind: 'end', attempt: 1 });
    expect((await waiting)?.status).toBe('error');
    expect(fakes.reads).toBe(2);
    expect(fakes.subscribed).toBe(false);
    expect(fakes.watchers.size).toBe(0);
  });

  it('an end of an attempt the task outlived (re-queued) is not its end', async () => {
    const fakes = new Fakes();
    let settled = false;
    const waiting = fakes
      .ends()
      .untilEnded('p', 't', new AbortController().signal)
      .finally(() => (settled = true));
    await tick();
    fakes.attempt = 2;
    fakes.listener!({ kind: 'end', attempt: 1 });
    await tick();
    expect(settled).toBe(false);
    expect(fakes.reads).toBe(2);
    fakes.status = 'complete';
    fakes.listener!({ kind: 'end', attempt: 2 });
    expect((await waiting)?.status).toBe('complete');
  });

  it('with Redis away, the watch tells it the task ended (or is gone)', async () => {
    const fakes = new Fakes();
    fakes.redisDown = true;
    const waiting = fakes.ends().untilEnded('p', 't', new AbortController().signal);
    await tick();
    fakes.status = 'timeout';
    fakes.poll();
    expect((await waiting)?.status).toBe('timeout');

    const gone = new Fakes();
    const reading = gone.ends().untilEnded('p', 't', new AbortController().signal);
    await tick();
    gone.status = 'cancelled';
    gone.poll(undefined);
    expect((await reading)?.status).toBe('cancelled');
  });

  it('an abort (deadline, client gone) answers undefined and lets go of the feed and the watch', async () => {
    const fakes = new Fakes();
    const abort = new AbortController();
    const waiting = fakes.ends().untilEnded('p', 't', abort.signal);
    await tick();
    expect(fakes.subscribed).toBe(true);
    expect(fakes.watchers.size).toBe(1);
    abort.abort();
    expect(await waiting).toBeUndefined();
    expect(fakes.subscribed).toBe(false);
    expect(fakes.watchers.size).toBe(0);
    expect(fakes.reads).toBe(1);
  });
});
