import { JsonObject, KilnException, isId } from '@kiln/common';
import type { TaskFilter } from './store/task-store';
import { parseTaskFilter } from './task-list-query';

/** Ids a bulk cancel or retry takes per request, at most. */
export const MAX_BULK_IDS = 1000;

/**
 * Tasks a bulk request by `filter` changes at most, oldest first; past them the answer says
 * `"more": true` and the same request goes on with the rest. A cancel is one statement per
 * request; a retry queues new tasks, so it takes what one request of ids would.
 */
export const BULK_FILTER_LIMITS = { cancel: 10_000, retry: MAX_BULK_IDS } as const;

/** What a bulk cancel or retry is for: tasks by id, or every task matching the list's filters. */
export type BulkTarget = { ids: string[] } | { filter: TaskFilter };

/** What a bulk request did: by ids, how many were not the project's; by filter, whether there is more. */
export type BulkOutcome<T> = { done: T; notFound: number } | { done: T; more: boolean };

/**
 * `{"ids": [...]}` (1 to MAX_BULK_IDS task ids, repeats counted once) or `{"filter": {...}}` (see
 * parseTaskFilter), not both.
 */
export function parseBulkTarget(body: JsonObject): BulkTarget {
  const hasIds = body.ids !== undefined;
  if (hasIds === (body.filter !== undefined)) {
    throw KilnException.badRequest('give either "ids" (a list of task ids) or "filter"');
  }
  if (!hasIds) return { filter: parseTaskFilter(body.filter) };
  const ids = body.ids;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_BULK_IDS) {
    throw KilnException.badRequest(`ids must be a list of 1 to ${MAX_BULK_IDS} task ids`);
  }
  ids.forEach((id, i) => {
    if (!isId(id)) {
      throw KilnException.badRequest(`ids[${i}] is not a valid id (24 hex characters)`);
    }
  });
  return { ids: [...new Set(ids as string[])] };
}
