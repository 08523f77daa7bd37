import { bucketSecondsFor, parseProjectStatsQuery } from './project-stats-query';
import { bucketsOf } from './project-stats';

const NOW = Date.UTC(2026, 11, 1, 20, 30, 15, 500);

describe('parseProjectStatsQuery', () => {
  it('defaults to the last 24 hours, ending after the current second, in 24 hour buckets', () => {
    const query = parseProjectStatsQuery({}, NOW);
    expect(query.end).toEqual(new Date(Date.UTC(2026, 11, 1, 20, 30, 16)));
    expect(query.end.getTime() - query.start.getTime()).toBe(24 * 3600_000);
    expect(query.bucketSeconds).toBe(3600);
  });

  it('reads the window in epoch seconds and sizes buckets to it', () => {
    expect(parseProjectStatsQuery({ start_date: '1000', end_date: '4600', oauth: 't' })).toEqual({
      start: new Date(1_000_000),
      end: new Date(4_600_000),
      bucketSeconds: 300,
    });
  });

  it('refuses an empty or reversed window, a bad number and an unknown parameter', () => {
    expect(() => parseProjectStatsQuery({ start_date: '10', end_date: '10' })).toThrow(
      'end_date must be after start_date',
    );
    expect(() => parseProjectStatsQuery({ start_date: '20', end_date: '10' })).toThrow(
      'end_date must be after start_date',
    );
    expect(() => parseProjectStatsQuery({ start_date: 'yesterday' })).toThrow('start_date');
    expect(() => parseProjectStatsQuery({ start: '10' })).toThrow(
      'unknown stats parameter "start"',
    );
  });
});

describe('bucketSecondsFor', () => {
  it('takes the smallest round size giving at most 32 buckets', () => {
    expect(bucketSecondsFor(1000)).toBe(60);
    expect(bucketSecondsFor(3600_000)).toBe(300);
    expect(bucketSecondsFor(24 * 3600_000)).toBe(3600);
    expect(bucketSecondsFor(7 * 24 * 3600_000)).toBe(6 * 3600);
    expect(bucketSecondsFor(30 * 24 * 3600_000)).toBe(86400);
  });

  it('shares a window longer than 32 weeks evenly', () => {
    const year = 365 * 24 * 3600_000;
    expect(Math.ceil(year / 1000 / bucketSecondsFor(year))).toBeLessThanOrEqual(32);
  });
});

describe('bucketsOf', () => {
  it('covers the window with buckets starting at multiples of their size', () => {
    const buckets = bucketsOf({
      start: new Date(Date.UTC(2026, 0, 1, 10, 20)),
      end: new Date(Date.UTC(2026, 0, 1, 13, 0)),
      bucketSeconds: 3600,
    });
    expect(buckets.map((bucket) => bucket.start.toISOString())).toEqual([
      '2026-01-01T10:00:00.000Z',
      '2026-01-01T11:00:00.000Z',
      '2026-01-01T12:00:00.000Z',
    ]);
    expect(buckets[0]).toMatchObject({ complete: 0, error: 0, timeout: 0, killed: 0 });
  });
});
