import type { LogHead, TaskLogStore } from '@kiln/tasks';
import { FollowWatch } from './follow-watch';

const head = (lastSeq: number): LogHead => ({ status: 'running', attempt: 1, lastSeq });

describe('FollowWatch', () => {
  let reads: string[][];
  let failing: boolean;
  let watch: FollowWatch;

  beforeEach(() => {
    reads = [];
    failing = false;
    const logs = {
      heads: async (ids: string[]) => {
        reads.push(ids);
        if (failing) throw new Error('Connection terminated');
        return new Map(ids.filter((id) => id !== 'gone').map((id) => [id, head(id.length)]));
      },
    } as unknown as TaskLogStore;
    watch = new FollowWatch(logs);
    watch.pollMs = 60_000; // the test polls by hand
  });
  afterEach(() => watch.onApplicationShutdown());

  it('reads every followed task in one statement a poll, however many follow each', async () => {
    const heard: Record<string, (LogHead | undefined)[]> = { a: [], b: [], gone: [] };
    const stops = [
      watch.watch('a', (h) => heard.a.push(h)),
      watch.watch('a', (h) => heard.a.push(h)),
      watch.watch('bb', (h) => heard.b.push(h)),
      watch.watch('gone', (h) => heard.gone.push(h)),
    ];
    await watch.poll();
    expect(reads).toEqual([['a', 'bb', 'gone']]);
    expect(heard.a).toEqual([head(1), head(1)]);
    expect(heard.b).toEqual([head(2)]);
    expect(heard.gone).toEqual([undefined]); // a task that is gone tells its followers so
    for (const stop of stops) stop();
    expect(watch.watched).toBe(0);
    await watch.poll();
    expect(reads).toHaveLength(1); // nothing followed: no statement
  });

  it('reads a thousand ids per statement', async () => {
    for (let i = 0; i < 2500; i++) watch.watch(`t${i}`, () => undefined);
    await watch.poll();
    expect(reads.map((ids) => ids.length)).toEqual([1000, 1000, 500]);
  });

  it('survives a failed read: the followers hear nothing and the next poll tries again', async () => {
    const heard: (LogHead | undefined)[] = [];
    watch.watch('a', (h) => heard.push(h));
    failing = true;
    await expect(watch.poll()).resolves.toBeUndefined();
    expect(heard).toEqual([]);
    failing = false;
    await watch.poll();
    expect(heard).toEqual([head(1)]);
  });
});
