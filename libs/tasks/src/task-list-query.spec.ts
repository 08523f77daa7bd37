import {
  formatCursor,
  parseStatsWindow,
  parseTaskFilter,
  parseTaskListQuery,
} from './task-list-query';
import { MAX_BULK_IDS, parseBulkTarget } from './task-bulk';

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

describe('cursor paging and search', () => {
  const CURSOR = '1764547200123456_0123456789abcdef01234567';

  it('takes an empty cursor as the first page and a next_cursor as a place', () => {
    expect(parseTaskListQuery({ cursor: '' }).cursor).toBe('first');
    expect(parseTaskListQuery({ cursor: CURSOR }).cursor).toEqual({
      micros: '1764547200123456',
      id: '0123456789abcdef01234567',
    });
    expect(formatCursor({ micros: '1764547200123456', id: '0123456789abcdef01234567' })).toBe(
      CURSOR,
    );
  });

  it('leaves the answer as it was without cursor or q', () => {
    const query = parseTaskListQuery({ page: '1' });
    expect('cursor' in query).toBe(false);
    expect('q' in query).toBe(false);
  });

  it('refuses a malformed cursor, a long q, and page with either', () => {
    for (const cursor of ['x', '12_abc', `1_${'g'.repeat(24)}`, ['', '']]) {
      expect(() => parseTaskListQuery({ cursor })).toThrow('cursor must be a next_cursor');
    }
    expect(() => parseTaskListQuery({ q: 'x'.repeat(257) })).toThrow('at most 256');
    expect(() => parseTaskListQuery({ q: 'x', page: '2' })).toThrow('page cannot be combined');
    expect(() => parseTaskListQuery({ cursor: CURSOR, page: '1' })).toThrow(
      'page cannot be combined',
    );
  });
});

describe('parseTaskFilter', () => {
  it('reads the list filters from JSON, numbers and booleans as their text', () => {
    expect(
      parseTaskFilter({
        error: 1,
        timeout: true,
        queued: 0,
        code_name: 'a',
        from_time: 1700000000,
      }),
    ).toEqual({
      statuses: ['error', 'timeout'],
      codeName: 'a',
      label: undefined,
      cluster: undefined,
      fromTime: new Date(1_700_000_000_000),
      toTime: undefined,
    });
    expect(parseTaskFilter({})).toMatchObject({ statuses: [] });
  });

  it('refuses what is not an object of strings and numbers, and unknown or paging fields', () => {
    for (const filter of [null, [], 'error', 3]) {
      expect(() => parseTaskFilter(filter)).toThrow('filter must be a JSON object');
    }
    expect(() => parseTaskFilter({ code_name: ['a'] })).toThrow('filter.code_name must be');
    expect(() => parseTaskFilter({ page: 2 })).toThrow('unknown filter field "page"');
    expect(() => parseTaskFilter({ from_time: -1 })).toThrow('from_time');
  });
});

describe('parseBulkTarget', () => {
  const id = (n: number) => n.toString(16).padStart(24, '0');

  it('takes ids, each once, or a filter', () => {
    expect(parseBulkTarget({ ids: [id(1), id(2), id(1)] })).toEqual({ ids: [id(1), id(2)] });
    expect(parseBulkTarget({ filter: { error: '1' } })).toMatchObject({
      filter: { statuses: ['error'] },
    });
  });

  it('refuses neither or both, an empty or too long list, and a bad id', () => {
    expect(() => parseBulkTarget({})).toThrow('give either "ids"');
    expect(() => parseBulkTarget({ ids: [id(1)], filter: {} })).toThrow('give either "ids"');
    expect(() => parseBulkTarget({ ids: [] })).toThrow('ids must be a list of 1 to 1000');
    expect(() => parseBulkTarget({ ids: id(1) })).toThrow('ids must be a list');
    const many = Array.from({ length: MAX_BULK_IDS + 1 }, (_, n) => id(n));
    expect(() => parseBulkTarget({ ids: many })).toThrow('ids must be a list of 1 to 1000');
    expect(() => parseBulkTarget({ ids: [id(1), 'nope'] })).toThrow('ids[1] is not a valid id');
  });
});
