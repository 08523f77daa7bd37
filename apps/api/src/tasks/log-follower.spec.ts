import type { FeedMessage, TaskLogFeed } from '@kiln/redis';
import type { LogChunk, Task, TaskLogStore, TaskStatus, TasksService } from '@kiln/tasks';
import type { LogHead } from '@kiln/tasks';
import type { FollowWatch, HeadListener } from './follow-watch';
import { FollowEvent, LogFollower, parsePosition } from './log-follower';

/** Postgres and Redis swapped for arrays: the follower's rules, nothing else. */
class Fakes {
  status: TaskStatus = 'running';
  attempt = 1;
  stored: LogChunk[] = [];
  listener: ((message: FeedMessage) => void) | undefined;
  unsubscribed = false;
  redisDown = false;
  watchers = new Set<HeadListener>();
  /** Reads of the store so far. */
  reads = 0;

  store(seq: number, data: string): LogChunk {
    const chunk = { seq, stream: 1, data };
    this.stored.push(chunk);
    return chunk;
  }

  /** What the watch would tell the follower now, as FollowWatch reads it from the store. */
  head(): LogHead {
    return {
      status: this.status,
      attempt: this.attempt,
      lastSeq: this.stored.reduce((last, chunk) => Math.max(last, chunk.seq), 0),
    };
  }

  /** One poll of the shared watch. */
  poll(): void {
    for (const listener of this.watchers) listener(this.head());
  }

  follower(): LogFollower {
    const tasks = {
      get: async () => ({ ...this.task() }),
    } as unknown as TasksService;
    const logs = {
      readAfter: async (_id: string, after: number) => {
        this.reads++;
        return this.stored.filter((c) => c.seq > after);
      },
    } as unknown as TaskLogStore;
    const feed = {
      subscribe: async (_id: string, listener: (message: FeedMessage) => void) => {
        if (this.redisDown) throw new Error('connect ECONNREFUSED');
        this.listener = listener;
        return () => (this.unsubscribed = true);
      },
    } as unknown as TaskLogFeed;
    const watch = {
      watch: (_id: string, listener: HeadListener) => {
        this.watchers.add(listener);
        return () => this.watchers.delete(listener);
      },
    } as unknown as FollowWatch;
    return new LogFollower(tasks, logs, feed, watch);
  }

  task(): Task {
    return {
      id: 'a'.repeat(24),
      projectId: 'b'.repeat(24),
      status: this.status,
      attempt: this.attempt,
    } as Task;
  }
}

async function collect(
  events: AsyncGenerator<FollowEvent>,
  onEvent: (event: FollowEvent, index: number) => void = () => undefined,
): Promise<FollowEvent[]> {
  const seen: FollowEvent[] = [];
  for await (const event of events) {
    seen.push(event);
    onEvent(event, seen.length - 1);
  }
  return seen;
}

const text = (events: FollowEvent[]) =>
  events.map((e) => (e.kind === 'chunk' ? e.data : `<${e.status}>`)).join('');
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('LogFollower', () => {
  it('sends the stored chunks, then live ones (each once, in seq order), then the end', async () => {
    const fakes = new Fakes();
    fakes.store(1, 'a\n');
    const follower = fakes.follower();
    const done = collect(follower.follow(fakes.task(), new AbortController().signal));
    await tick();
    const chunk2 = fakes.store(2, 'b\n');
    // A chunk heard live and also stored meanwhile, then a repeat of it: sent once.
    fakes.listener!({ kind: 'chunks', attempt: 1, chunks: [fakes.stored[0], chunk2] });
    fakes.listener!({ kind: 'chunks', attempt: 1, chunks: [chunk2] });
    const chunk3 = fakes.store(3, 'c\n');
    fakes.listener!({ kind: 'chunks', attempt: 1, chunks: [chunk3] });
    fakes.status = 'complete';
    fakes.listener!({ kind: 'end', attempt: 1 });
    const events = await done;
    expect(text(events)).toBe('a\nb\nc\n<complete>');
    expect(events.filter((e) => e.kind === 'chunk').map((e) => (e as { seq: number }).seq)).toEqual(
      [1, 2, 3],
    );
    expect(fakes.unsubscribed).toBe(true);
  });

  it('reads a gap in what Redis delivered from the store', async () => {
    const fakes = new Fakes();
    const follower = fakes.follower();
    const done = collect(follower.follow(fakes.task(), new AbortController().signal));
    await tick();
    fakes.store(1, 'one\n');
    fakes.store(2, 'two\n');
    const chunk3 = fakes.store(3, 'three\n');
    fakes.listener!({ kind: 'chunks', attempt: 1, chunks: [chunk3] }); // 1 and 2 were missed
    await tick();
    fakes.status = 'error';
    fakes.listener!({ kind: 'end', attempt: 1 });
    expect(text(await done)).toBe('one\ntwo\nthree\n<error>');
  });

  it('reads the store when the watch shows news while Redis is unreachable, and only then', async () => {
    const fakes = new Fakes();
    fakes.redisDown = true;
    fakes.store(1, 'x\n');
    const follower = fakes.follower();
    const seen: FollowEvent[] = [];
    const done = collect(follower.follow(fakes.task(), new AbortController().signal), (event) =>
      seen.push(event),
    );
    await tick();
    expect(text(seen)).toBe('x\n');
    const readsWhenIdle = fakes.reads;
    fakes.poll(); // nothing new: no read
    fakes.poll();
    await tick();
    expect(fakes.reads).toBe(readsWhenIdle);
    fakes.store(2, 'y\n');
    fakes.poll();
    await tick();
    expect(text(seen)).toBe('x\ny\n');
    fakes.status = 'timeout';
    fakes.poll();
    expect(text(await done)).toBe('x\ny\n<timeout>');
    expect(fakes.watchers.size).toBe(0);
  });

  it('ends when the watch finds the task final though Redis never said so', async () => {
    const fakes = new Fakes();
    const follower = fakes.follower();
    const done = collect(follower.follow(fakes.task(), new AbortController().signal));
    await tick();
    fakes.store(1, 'lost message\n');
    fakes.status = 'complete';
    fakes.poll();
    expect(text(await done)).toBe('lost message\n<complete>');
  });

  it('starts over when a new attempt runs, and ignores a stale attempt', async () => {
    const fakes = new Fakes();
    fakes.store(1, 'first try\n');
    const follower = fakes.follower();
    const done = collect(follower.follow(fakes.task(), new AbortController().signal));
    await tick();
    fakes.stored = [];
    fakes.attempt = 2;
    const again = fakes.store(1, 'second try\n');
    fakes.listener!({ kind: 'chunks', attempt: 2, chunks: [again] });
    fakes.listener!({
      kind: 'chunks',
      attempt: 1,
      chunks: [{ seq: 2, stream: 1, data: 'stale\n' }],
    });
    fakes.status = 'complete';
    fakes.listener!({ kind: 'end', attempt: 2 });
    expect(text(await done)).toBe('first try\nsecond try\n<complete>');
  });

  it('resumes after a position of the same attempt, and ends at once for a finished task', async () => {
    const fakes = new Fakes();
    fakes.store(1, 'a');
    fakes.store(2, 'b');
    fakes.status = 'complete';
    const follower = fakes.follower();
    const resumed = await collect(
      follower.follow(fakes.task(), new AbortController().signal, { attempt: 1, seq: 1 }),
    );
    expect(text(resumed)).toBe('b<complete>');
    const otherAttempt = await collect(
      follower.follow(fakes.task(), new AbortController().signal, { attempt: 7, seq: 2 }),
    );
    expect(text(otherAttempt)).toBe('ab<complete>');
  });

  it('stops when the client goes away', async () => {
    const fakes = new Fakes();
    const follower = fakes.follower();
    const abort = new AbortController();
    const done = collect(follower.follow(fakes.task(), abort.signal));
    await tick();
    abort.abort();
    expect(await done).toEqual([]);
    expect(fakes.unsubscribed).toBe(true);
  });

  it('parses Last-Event-ID positions', () => {
    expect(parsePosition('3.17')).toEqual({ attempt: 3, seq: 17 });
    expect(parsePosition('x')).toBeUndefined();
    expect(parsePosition(undefined)).toBeUndefined();
  });
});
