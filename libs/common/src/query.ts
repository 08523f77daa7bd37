import { KilnException } from './errors';
import { EPOCH_SECONDS_MAX, rangeProblem, textProblem } from './validate';

/** Readers of an HTTP request's query parameters (as Express parses them), with IronWorker's paging. */
export type QueryParams = Record<string, unknown>;

export interface Page {
  page: number;
  perPage: number;
}

/** IronWorker's paging: `page` from 0 (max 100), `per_page` 1-100, default 30. */
export function parsePage(query: QueryParams): Page {
  return {
    page: queryInt(query, 'page', 0, 0, 100),
    perPage: queryInt(query, 'per_page', 30, 1, 100),
  };
}

/** An integer query parameter in `min`..`max` (a 400 naming it and the range otherwise). */
export function queryInt(
  query: QueryParams,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = query[name];
  if (raw === undefined || raw === '') return fallback;
  const value = typeof raw === 'string' && /^-?\d{1,20}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw KilnException.badRequest(`${name} must be an integer from ${min} to ${max}`);
  }
  const problem = rangeProblem(name, value, min, max);
  if (problem) throw problem;
  return value;
}

/**
 * A time given as epoch seconds, 0 to 253402300799 (9999-12-31T23:59:59Z, the last second the
 * API can write back); undefined when absent or empty.
 */
export function queryEpochSeconds(query: QueryParams, name: string): Date | undefined {
  const seconds = queryInt(query, name, -1, 0, EPOCH_SECONDS_MAX);
  return seconds < 0 ? undefined : new Date(seconds * 1000);
}

/**
 * A text query parameter, given once, that Postgres can store (no NUL); undefined when absent or
 * empty.
 */
export function queryString(query: QueryParams, name: string): string | undefined {
  const value = query[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw KilnException.badRequest(`${name} must be given once`);
  const problem = textProblem(value);
  if (problem) throw KilnException.badRequest(`${name} ${problem}`);
  return value;
}

/** A flag such as `?queued=1`: any non-empty value but `0` and `false` sets it (Go sends `%!d(bool=true)`). */
export function isFlagSet(value: unknown): boolean {
  return typeof value === 'string'
    ? value !== '' && value !== '0' && value !== 'false'
    : value !== undefined;
}
