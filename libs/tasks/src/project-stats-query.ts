import { KilnException, QueryParams } from '@kiln/common';
import { parseStatsWindow } from './task-list-query';

/** `GET …/stats`'s window and the size of its time series' buckets. */
export interface ProjectStatsQuery {
  start: Date;
  end: Date;
  /** Seconds per bucket of the time series; buckets start at multiples of it (UTC). */
  bucketSeconds: number;
}

/** At most this many buckets in a window (24 of an hour for the default day). */
export const MAX_STATS_BUCKETS = 32;

/** Bucket sizes a chart reads at a glance: minutes, quarter hours, hours, days, weeks. */
const BUCKET_SIZES = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];

const STATS_PARAMS = new Set(['start_date', 'end_date', 'oauth']);

/**
 * `GET /2/projects/{pid}/stats`: `start_date`..`end_date` as `GET …/codes/{id}/stats` reads them
 * (epoch seconds, the last 24 hours by default), which must be a non-empty window; unknown
 * parameters are a 400 (a typo would otherwise show the default day as if asked for).
 */
export function parseProjectStatsQuery(query: QueryParams, now = Date.now()): ProjectStatsQuery {
  const unknown = Object.keys(query).filter((key) => !STATS_PARAMS.has(key));
  if (unknown.length > 0) {
    throw KilnException.badRequest(
      `unknown stats parameter ${unknown.map((key) => `"${key}"`).join(', ')}: use start_date, end_date`,
    );
  }
  const { start, end } = parseStatsWindow(query, now);
  if (end.getTime() <= start.getTime()) {
    throw KilnException.badRequest('end_date must be after start_date');
  }
  return { start, end, bucketSeconds: bucketSecondsFor(end.getTime() - start.getTime()) };
}

/** The smallest round bucket giving at most MAX_STATS_BUCKETS over `windowMs` (past a week's: an even share). */
export function bucketSecondsFor(windowMs: number): number {
  const seconds = Math.ceil(windowMs / 1000);
  return (
    BUCKET_SIZES.find((size) => Math.ceil(seconds / size) <= MAX_STATS_BUCKETS) ??
    Math.ceil(seconds / MAX_STATS_BUCKETS)
  );
}
