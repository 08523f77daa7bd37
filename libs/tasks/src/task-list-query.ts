import {
  KilnException,
  QueryParams,
  isFlagSet,
  isId,
  parsePage,
  queryEpochSeconds,
  queryString,
} from '@kiln/common';
import { TASK_STATUSES } from './task-status';
import type { TaskCursor, TaskFilter, TaskListQuery } from './store/task-store';

/** The filters of `GET …/tasks`, also what a bulk cancel or retry by `filter` takes. */
const FILTER_PARAMS = [...TASK_STATUSES, 'code_name', 'label', 'cluster', 'from_time', 'to_time'];

/** The query parameters `GET …/tasks` takes (`oauth` is IronWorker's token parameter). */
const LIST_PARAMS = new Set<string>([...FILTER_PARAMS, 'page', 'per_page', 'cursor', 'q', 'oauth']);

/** The longest `q` (a search over payloads wants a value, not a document). */
export const MAX_SEARCH_LENGTH = 256;

/**
 * `GET …/tasks`'s filters: `<status>=1` flags (OR-ed), code name, label, cluster, a time window in
 * epoch seconds, IronWorker's paging, and Kiln's `cursor` paging and `q` search (a search pages by
 * cursor: `page` is refused with it). An unknown parameter is a 400 naming it (a typo would
 * otherwise list everything).
 */
export function parseTaskListQuery(query: QueryParams): TaskListQuery {
  refuseUnknown(query, LIST_PARAMS, 'task filter');
  const cursor = parseCursor(query.cursor);
  const q = queryString(query, 'q');
  if (q !== undefined && q.length > MAX_SEARCH_LENGTH) {
    throw KilnException.badRequest(`q must be at most ${MAX_SEARCH_LENGTH} characters`);
  }
  const paging = parsePage(query);
  if ((cursor !== undefined || q !== undefined) && paging.page !== 0) {
    throw KilnException.badRequest('page cannot be combined with cursor or q: follow next_cursor');
  }
  return {
    ...paging,
    ...parseFilterParams(query),
    ...(cursor !== undefined ? { cursor } : {}),
    ...(q !== undefined ? { q } : {}),
  };
}

/**
 * A bulk cancel's or retry's `filter`: the list's filter parameters as a JSON object, values as
 * in the query string (numbers and booleans taken as their text: `{"error": 1, "from_time":
 * 1764547200}`). `{}` matches every task of the project.
 */
export function parseTaskFilter(value: unknown): TaskFilter {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw KilnException.badRequest('filter must be a JSON object');
  }
  const params: QueryParams = {};
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    if (typeof field === 'number' || typeof field === 'boolean') params[key] = String(field);
    else if (typeof field === 'string') params[key] = field;
    else throw KilnException.badRequest(`filter.${key} must be a string or a number`);
  }
  refuseUnknown(params, new Set(FILTER_PARAMS), 'filter field');
  return parseFilterParams(params);
}

function parseFilterParams(query: QueryParams): TaskFilter {
  return {
    statuses: TASK_STATUSES.filter((status) => isFlagSet(query[status])),
    codeName: queryString(query, 'code_name'),
    label: queryString(query, 'label'),
    cluster: queryString(query, 'cluster'),
    fromTime: queryEpochSeconds(query, 'from_time'),
    toTime: queryEpochSeconds(query, 'to_time'),
  };
}

function refuseUnknown(query: QueryParams, known: Set<string>, what: string): void {
  const unknown = Object.keys(query).filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw KilnException.badRequest(
      `unknown ${what} ${unknown.map((key) => `"${key}"`).join(', ')}: use ${[...known].join(', ')}`,
    );
  }
}

/**
 * `cursor`: absent for IronWorker's paging; empty for the first page of cursor paging; else a
 * `next_cursor` as answered, `<created_at in epoch µs>_<task id>` (a place in the list's order,
 * not a task: another project's cursor shows nothing of it).
 */
function parseCursor(value: unknown): TaskCursor | 'first' | undefined {
  if (value === undefined) return undefined;
  if (value === '') return 'first';
  const match = typeof value === 'string' ? /^(\d{1,17})_([0-9a-f]{24})$/.exec(value) : null;
  if (!match || !isId(match[2])) {
    throw KilnException.badRequest('cursor must be a next_cursor of this list, or empty');
  }
  return { micros: match[1], id: match[2] };
}

/** The `next_cursor` that continues after the task at `micros`, `id`. */
export function formatCursor(cursor: TaskCursor): string {
  return `${cursor.micros}_${cursor.id}`;
}

/**
 * `GET …/codes/{id}/stats`'s window, `start_date`..`end_date` in epoch seconds: by default the
 * last 24 hours, ending after the current second (epoch seconds round down), not in it.
 */
export function parseStatsWindow(query: QueryParams, now = Date.now()): { start: Date; end: Date } {
  const end = queryEpochSeconds(query, 'end_date') ?? new Date((Math.floor(now / 1000) + 1) * 1000);
  const start =
    queryEpochSeconds(query, 'start_date') ?? new Date(end.getTime() - 24 * 3600 * 1000);
  return { start, end };
}
