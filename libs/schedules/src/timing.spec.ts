import { Timing, cronProblem, firstRun, nextRun } from './timing';

const at = (iso: string) => new Date(iso);
const cron = (
  expr: string,
  timezone: string,
  startAt: string,
  extra: Partial<Timing> = {},
): Timing => ({
  startAt: at(startAt),
  runEvery: null,
  cron: expr,
  timezone,
  endAt: null,
  runTimes: 0,
  ...extra,
});

/** Every instant a schedule fires while the clock runs from its start to `until`, never late. */
function runs(timing: Timing, until: string): string[] {
  const out: string[] = [];
  let next = firstRun(timing);
  let count = 0;
  while (next && next <= at(until)) {
    out.push(next.toISOString());
    count += 1;
    // The scheduler fires at the instant itself: the controllable clock reads exactly `next`.
    next = nextRun(timing, next, count, next);
  }
  return out;
}

describe('cron schedules across daylight-saving changes', () => {
  it('Europe/Berlin spring forward: 02:30 does not exist on 29 March; it runs once, an hour on', () => {
    expect(
      runs(cron('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z'), '2026-03-30T23:00:00Z'),
    ).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST: the next valid wall-clock instant, once
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('Europe/Berlin fall back: 02:30 happens twice on 25 October; it runs once', () => {
    expect(
      runs(cron('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z'), '2026-10-26T23:00:00Z'),
    ).toEqual(['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('America/New_York spring forward and fall back', () => {
    expect(
      runs(cron('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z'), '2026-03-09T23:00:00Z'),
    ).toEqual(['2026-03-07T07:30:00.000Z', '2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z']);
    expect(
      runs(cron('30 1 * * *', 'America/New_York', '2026-10-31T00:00:00Z'), '2026-11-02T23:00:00Z'),
    ).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z', // 01:30 EDT; 01:30 EST an hour later does not run again
      '2026-11-02T06:30:00.000Z',
    ]);
  });

  it('every weekday at 09:00 Europe/Berlin', () => {
    expect(
      runs(cron('0 9 * * 1-5', 'Europe/Berlin', '2026-11-20T00:00:00Z'), '2026-11-25T00:00:00Z'),
    ).toEqual(['2026-11-20T08:00:00.000Z', '2026-11-23T08:00:00.000Z', '2026-11-24T08:00:00.000Z']);
  });

  it('month ends: the 31st skips months without one; "L"-free last-day crons stay valid', () => {
    expect(runs(cron('0 0 31 * *', 'UTC', '2026-01-01T00:00:00Z'), '2026-06-01T00:00:00Z')).toEqual(
      ['2026-01-31T00:00:00.000Z', '2026-03-31T00:00:00.000Z', '2026-05-31T00:00:00.000Z'],
    );
    expect(
      runs(cron('0 12 29 2 *', 'UTC', '2026-01-01T00:00:00Z'), '2028-12-31T00:00:00Z'),
    ).toEqual(['2028-02-29T12:00:00.000Z']);
  });
});

describe('IronWorker schedules', () => {
  const every = (extra: Partial<Timing> = {}): Timing => ({
    startAt: at('2026-01-01T00:00:00Z'),
    runEvery: 600,
    cron: null,
    timezone: 'UTC',
    endAt: null,
    runTimes: 0,
    ...extra,
  });

  it('run_every from start_at, `run_times` then stop', () => {
    expect(runs(every({ runTimes: 5 }), '2026-01-02T00:00:00Z')).toEqual([
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T00:10:00.000Z',
      '2026-01-01T00:20:00.000Z',
      '2026-01-01T00:30:00.000Z',
      '2026-01-01T00:40:00.000Z',
    ]);
  });

  it('stops at end_at', () => {
    expect(runs(every({ endAt: at('2026-01-01T00:25:00Z') }), '2026-01-02T00:00:00Z')).toHaveLength(
      3,
    );
    expect(firstRun(every({ endAt: at('2025-12-31T00:00:00Z') }))).toBeNull();
  });

  it('without run_every it runs once', () => {
    expect(runs(every({ runEvery: null }), '2026-01-02T00:00:00Z')).toEqual([
      '2026-01-01T00:00:00.000Z',
    ]);
  });

  it('after downtime it fires once for the missed window, then keeps its rhythm', () => {
    // Fired at 00:00, then the scheduler was down until 03:07: the next instant is 03:10, not 00:10.
    expect(nextRun(every(), at('2026-01-01T00:00:00Z'), 1, at('2026-01-01T03:07:00Z'))).toEqual(
      at('2026-01-01T03:10:00Z'),
    );
    const late = cron('*/5 * * * *', 'UTC', '2026-01-01T00:00:00Z');
    expect(nextRun(late, at('2026-01-01T00:00:00Z'), 1, at('2026-01-01T01:02:00Z'))).toEqual(
      at('2026-01-01T01:05:00Z'),
    );
  });
});

describe('cronProblem', () => {
  it.each([
    ['*/5 * * * *', null],
    ['*/10 * * * * *', 'a seconds field is not allowed'],
    ['0 */5 * * * *', 'a seconds field is not allowed'],
    ['* * *', 'cron must have 5 fields'],
    ['61 * * * *', 'cron is invalid'],
    ['a b c d e', 'cron is invalid'],
  ])('%s', (expr, problem) => {
    const found = cronProblem(expr);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toContain(problem);
  });
});
