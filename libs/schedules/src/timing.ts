import { parseExpression } from 'cron-parser';

/** What decides when a schedule fires. */
export interface Timing {
  startAt: Date;
  runEvery: number | null;
  cron: string | null;
  timezone: string;
  endAt: Date | null;
  runTimes: number;
}

/** The first instant at or after `from` that `cron` names, in `timezone`. */
function cronAtOrAfter(cron: string, timezone: string, from: Date): Date {
  // cron-parser's next() is strictly after currentDate.
  const iterator = parseExpression(cron, {
    currentDate: new Date(from.getTime() - 1),
    tz: timezone,
  });
  return iterator.next().toDate();
}

/** The instant a new schedule fires first, or null if that is already past its end. */
export function firstRun(timing: Timing): Date | null {
  const first = timing.cron
    ? cronAtOrAfter(timing.cron, timing.timezone, timing.startAt)
    : timing.startAt;
  return timing.endAt && first > timing.endAt ? null : first;
}

/**
 * The instant after a fire at `fired`, seen at `now`, or null when the schedule is done (run once,
 * `run_times` reached, past `end_at`). A schedule that fell behind (the scheduler was down) skips
 * to the first instant after `now`: the missed window fired once, not once per missed tick.
 * Cron instants are computed in the schedule's IANA zone, so daylight-saving changes neither
 * repeat nor drop a run (a 02:30 that does not exist runs once, an hour on; one that happens
 * twice runs once).
 */
export function nextRun(timing: Timing, fired: Date, runCount: number, now: Date): Date | null {
  if (timing.runTimes > 0 && runCount >= timing.runTimes) return null;
  let next: Date | null;
  if (timing.cron) {
    const after = fired > now ? fired : now;
    next = parseExpression(timing.cron, { currentDate: after, tz: timing.timezone })
      .next()
      .toDate();
  } else if (timing.runEvery) {
    const step = timing.runEvery * 1000;
    const behind = Math.max(0, Math.floor((now.getTime() - fired.getTime()) / step));
    next = new Date(fired.getTime() + (behind + 1) * step);
  } else {
    next = null;
  }
  if (next && timing.endAt && next > timing.endAt) return null;
  return next;
}

const CRON_FIELDS = 'minute hour day-of-month month day-of-week';

/**
 * Whether `cron` is a valid 5-field expression; the error message otherwise. A sixth field
 * (cron-parser reads it as seconds) is refused: a schedule fires at most once a minute, as
 * `run_every`'s 60 s minimum says.
 */
export function cronProblem(cron: string): string | null {
  const fields = cron.trim().split(/\s+/);
  if (fields.length === 6) {
    return `cron must have 5 fields (${CRON_FIELDS}): a seconds field is not allowed, schedules fire at most once every 60 s`;
  }
  if (fields.length !== 5) return `cron must have 5 fields (${CRON_FIELDS})`;
  try {
    parseExpression(cron, { tz: 'UTC' }).next();
    return null;
  } catch (error) {
    return `cron is invalid: ${(error as Error).message}`;
  }
}

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
