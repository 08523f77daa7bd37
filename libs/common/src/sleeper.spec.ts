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
