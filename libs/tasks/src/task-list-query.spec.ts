import { parseStatsWindow, parseTaskListQuery } from './task-list-query';

describe('parseTaskListQuery', () => {
  it('reads flags, filters, the window and paging', () => {
    expect(
      parseTaskListQuery({
        queued: '1',
        running: '%!d(bool=true)',
        error: '0',
        complete: 'false',
        code_name: 'hello',
        from_time: '1700000000',
        page: '2',
        per_page: '10',
        oauth: 'token',
      }),
    ).toEqual({
      statuses: ['queued', 'running'],
      codeName: 'hello',
      label: undefined,
      cluster: undefined,
      fromTime: new Date(1_700_000_000_000),
      toTime: undefined,
      page: 2,
      perPage: 10,
    });
  });

  it('refuses an unknown filter, naming it', () => {
    expect(() => parseTaskListQuery({ stauts: 'queued' })).toThrow('unknown task filter "stauts"');
  });
});

describe('parseStatsWindow', () => {
  it('defaults to the 24 hours ending after the current second', () => {
    const now = Date.UTC(2026, 10, 30, 12, 0, 0, 400);
    expect(parseStatsWindow({}, now)).toEqual({
      start: new Date(Date.UTC(2026, 10, 29, 12, 0, 1)),
      end: new Date(Date.UTC(2026, 10, 30, 12, 0, 1)),
    });
  });

  it('takes either end as epoch seconds', () => {
    expect(parseStatsWindow({ start_date: '10', end_date: '20' })).toEqual({
      start: new Date(10_000),
      end: new Date(20_000),
    });
  });
});
