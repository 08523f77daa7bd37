import { KilnException } from '@kiln/common';
import { Schedule } from './schedule.entity';
import { mergeScheduleUpdate, parseScheduleSpec } from './schedule-spec';

const LIMITS = { defaultTimeout: 3600, maxTimeout: 3600, maxPayloadBytes: 65536 };

function parse(fields: Record<string, unknown>) {
  return parseScheduleSpec({ code_name: 'c', payload: '{}', run_every: 60, ...fields }, LIMITS);
}

function failure(fields: Record<string, unknown>): string {
  try {
    parse(fields);
  } catch (error) {
    return (error as KilnException).message;
  }
  throw new Error('did not throw');
}

describe('parseScheduleSpec', () => {
  it.each([
    ['2024-02-29T12:00:00Z', '2024-02-29T12:00:00.000Z'],
    ['2024-01-01T01:00:00+01:00', '2024-01-01T00:00:00.000Z'],
    ['2024-01-01T00:00:00.123456Z', '2024-01-01T00:00:00.123Z'],
    ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59Z', '9999-12-31T23:59:59.000Z'],
    // Without an offset: UTC, whatever the server's time zone.
    ['2024-01-01T00:00:00', '2024-01-01T00:00:00.000Z'],
    ['2024-01-01T00:00', '2024-01-01T00:00:00.000Z'],
  ])('takes start_at %s', (value, expected) => {
    expect(parse({ start_at: value }).startAt?.toISOString()).toBe(expected);
  });

  it.each([
    ['2024-02-30T00:00:00Z', 'start_at must be an RFC3339 time'],
    ['2023-02-29T00:00:00Z', 'start_at must be an RFC3339 time'],
    ['2024-13-01T00:00:00Z', 'start_at must be an RFC3339 time'],
    ['2024-01-01T24:00:00Z', 'start_at must be an RFC3339 time'],
    ['2024-01-01T00:00:60Z', 'start_at must be an RFC3339 time'],
    ['2024-01-01T00:00:00+24:00', 'start_at must be an RFC3339 time'],
    ['+010000-01-01T00:00:00.000Z', 'start_at must be an RFC3339 time'],
    ['1969-12-31T23:59:59Z', 'start_at must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z'],
    [
      '9999-12-31T23:59:59-01:00',
      'start_at must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
    ],
  ])('refuses start_at %s', (value, message) => {
    expect(failure({ start_at: value })).toBe(message);
  });

  it.each([
    [{ run_every: 59 }, 'run_every must be at least 60 (an integer from 60 to 315360000)'],
    [{ run_every: 1e21 }, 'run_every must be at most 315360000 (an integer from 60 to 315360000)'],
    [
      { run_times: 2 ** 31 },
      'run_times must be at most 2147483647 (an integer from 0 to 2147483647)',
    ],
    [{ run_times: -1 }, 'run_times must be at least 0 (an integer from 0 to 2147483647)'],
    [{ cluster: 'no spaces' }, "cluster must be 1-63 letters, digits, '.', '_' or '-'"],
    [{ label: 'a\u0000' }, 'label must not contain NUL characters'],
  ])('refuses %j', (fields, message) => {
    expect(failure(fields)).toBe(message);
  });
});

describe('mergeScheduleUpdate', () => {
  const current = Object.assign(new Schedule(), {
    codeName: 'job',
    payload: '{}',
    startAt: new Date('2026-11-30T00:00:00Z'),
    runEvery: 3600,
    cron: null,
    timezone: 'UTC',
    endAt: null,
    runTimes: 0,
    priority: null,
    timeout: null,
    delay: 0,
    taskDelay: 0,
    cluster: 'default',
    label: '',
  });

  it('keeps what the update leaves out', () => {
    expect(mergeScheduleUpdate(current, { label: 'x' })).toMatchObject({
      code_name: 'job',
      run_every: 3600,
      label: 'x',
      start_at: '2026-11-30T00:00:00.000Z',
    });
  });

  it('setting one timing style clears the other', () => {
    expect(mergeScheduleUpdate(current, { cron: '0 * * * *' })).toMatchObject({
      cron: '0 * * * *',
      run_every: null,
    });
    const cronned = Object.assign(new Schedule(), {
      ...current,
      runEvery: null,
      cron: '0 * * * *',
    });
    expect(mergeScheduleUpdate(cronned, { run_every: 60 })).toMatchObject({
      run_every: 60,
      cron: null,
    });
  });
});
