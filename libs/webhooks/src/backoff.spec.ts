import { retryDelaySeconds } from './backoff';

const DAY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];

describe('retryDelaySeconds', () => {
  it('follows the schedule, one step per failure, then gives up', () => {
    const middle = () => 0.5;
    expect(DAY_SCHEDULE.map((_, i) => retryDelaySeconds(i + 1, DAY_SCHEDULE, middle))).toEqual(
      DAY_SCHEDULE,
    );
    expect(retryDelaySeconds(DAY_SCHEDULE.length + 1, DAY_SCHEDULE, middle)).toBeNull();
    expect(retryDelaySeconds(0, DAY_SCHEDULE, middle)).toBeNull();
    expect(retryDelaySeconds(1, [], middle)).toBeNull();
  });

  it('jitters by ±10 %', () => {
    expect(retryDelaySeconds(2, DAY_SCHEDULE, () => 0)).toBeCloseTo(270);
    expect(retryDelaySeconds(2, DAY_SCHEDULE, () => 0.999999)).toBeCloseTo(330);
    const seen = new Set(Array.from({ length: 50 }, () => retryDelaySeconds(3, DAY_SCHEDULE)));
    expect(seen.size).toBeGreaterThan(1);
    for (const delay of seen) {
      expect(delay).toBeGreaterThanOrEqual(1620);
      expect(delay).toBeLessThanOrEqual(1980);
    }
  });

  it('spreads the default schedule over about a day', () => {
    const total = DAY_SCHEDULE.reduce((sum, seconds) => sum + seconds, 0);
    expect(total / 3600).toBeGreaterThan(24);
    expect(total / 3600).toBeLessThan(30);
  });
});
