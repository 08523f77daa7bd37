import { Sleeper, backoffMs } from './sleeper';

describe('Sleeper', () => {
  it('sleeps about as long as asked', async () => {
    const sleeper = new Sleeper();
    const started = Date.now();
    await sleeper.sleep(50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(sleeper.stopped).toBe(false);
  });

  it('stop ends the sleeps in progress and every later one at once', async () => {
    const sleeper = new Sleeper();
    const started = Date.now();
    const long = sleeper.sleep(60_000);
    sleeper.stop();
    await long;
    await sleeper.sleep(60_000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(sleeper.stopped).toBe(true);
  });
});

describe('backoffMs', () => {
  it('doubles from the first wait up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n, 500, 10_000))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
  });
});

describe('Sleeper.retry', () => {
  it('tries again while `again` says so, and answers what the last try resolved', async () => {
    const sleeper = new Sleeper();
    const seen: number[] = [];
    const answer = await sleeper.retry(
      async (tries) => {
        seen.push(tries);
        if (tries < 3) throw new Error(`try ${tries}`);
        return 'done';
      },
      () => true,
      () => 1,
    );
    expect(answer).toBe('done');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('rethrows the error `again` refuses, with the tries so far', async () => {
    const sleeper = new Sleeper();
    const asked: number[] = [];
    const failing = sleeper.retry(
      async (tries) => {
        throw new Error(`try ${tries}`);
      },
      (_error, tries) => {
        asked.push(tries);
        return tries < 2;
      },
      () => 1,
    );
    await expect(failing).rejects.toThrow('try 2');
    expect(asked).toEqual([1, 2]);
  });

  it('asks `again` once more, then rethrows at once, when stopped', async () => {
    const sleeper = new Sleeper();
    let asked = 0;
    const failing = sleeper.retry(
      async () => {
        throw new Error('away');
      },
      () => {
        asked++;
        return true;
      },
      () => 60_000,
    );
    setTimeout(() => sleeper.stop(), 20);
    await expect(failing).rejects.toThrow('away');
    expect(asked).toBe(2);
  });
});
