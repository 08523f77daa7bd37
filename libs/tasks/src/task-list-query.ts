import {
  KilnException,
  QueryParams,
  isFlagSet,
  parsePage,
  queryEpochSeconds,
  queryString,
} from '@kiln/common';
import { TASK_STATUSES } from './task-status';
import type { TaskListQuery } from './store/task-store';

/** The query parameters `GET …/tasks` takes (`oauth` is IronWorker's token parameter). */
const LIST_PARAMS = new Set<string>([
  ...TASK_STATUSES,
  'page',
  'per_page',
  'code_name',
  'label',
  'cluster',
  'from_time',
  'to_time',
  'oauth',
]);

/**
 * `GET …/tasks`'s filters: `<status>=1` flags (OR-ed), code name, label, cluster, a time window in
 * epoch seconds and IronWorker's paging. An unknown parameter is a 400 naming it (a typo would
 * otherwise list everything).
 */
export function parseTaskListQuery(query: QueryParams): TaskListQuery {
  const unknown = Object.keys(query).filter((key) => !LIST_PARAMS.has(key));
  if (unknown.length > 0) {
    throw KilnException.badRequest(
      `unknown task filter ${unknown.map((key) => `"${key}"`).join(', ')}: use ${[...LIST_PARAMS].join(', ')}`,
    );
  }
  return {
    ...parsePage(query),
    statuses: TASK_STATUSES.filter((status) => isFlagSet(query[status])),
    codeName: queryString(query, 'code_name'),
    label: queryString(query, 'label'),
    cluster: queryString(query, 'cluster'),
    fromTime: queryEpochSeconds(query, 'from_time'),
    toTime: queryEpochSeconds(query, 'to_time'),
  };
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
