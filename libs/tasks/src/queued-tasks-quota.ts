import { Injectable } from '@nestjs/common';
import { ProjectLimits, checkQuota } from '@kiln/projects';
import { TaskStore } from './store/task-store';

/**
 * Tasks per second one project could be queued at through all API processes together, at most:
 * a little over what one API process takes (docs/benchmarks.md, ingest: about 15,000).
 */
const ASSUMED_INGEST_PER_SECOND = 20_000;
/** Bounds of how long a count is reused; see {@link recountAfterMs}. */
export const RECOUNT_MIN_MS = 1000;
export const RECOUNT_MAX_MS = 10_000;
const COUNTS_MAX = 10_000;

/**
 * How long a count of a project's queued tasks is reused, given the room it leaves under the
 * quota: the project cannot fill `headroom` tasks faster than the whole API ingests, so a count
 * far from the quota can wait (up to 10 s), one near it is taken again every second.
 */
export function recountAfterMs(headroom: number): number {
  const fill = (Math.max(0, headroom) / ASSUMED_INGEST_PER_SECOND) * 1000;
  return Math.min(RECOUNT_MAX_MS, Math.max(RECOUNT_MIN_MS, Math.floor(fill)));
}

/**
 * The queued-tasks quota on the task create path. Counting a project's queued tasks is an
 * index-only count (`TaskStore.countQueued`: 0.1 ms for ten, about 210 ms for a million), so it is
 * not taken per request: a count is reused for 1-10 s ({@link recountAfterMs}), and the tasks
 * this process queues meanwhile are added to it. The quota therefore holds exactly for what one
 * API process queues, and to within what the others queue between two counts; a project at its
 * quota is refused until a count sees room again (at most a second).
 */
interface Count {
  /** Queued tasks: the last count, plus what this process reserved since. */
  held: number;
  until: number;
}

@Injectable()
export class QueuedTasksQuota {
  private readonly counts = new Map<string, Count>();
  /** Counts under way, so that requests arriving together wait for one and share it. */
  private readonly counting = new Map<string, Promise<Count>>();

  constructor(
    private readonly store: TaskStore,
    private readonly limits: ProjectLimits,
  ) {}

  /**
   * Reserves room for `adding` more queued tasks, or refuses with a 429. Returns what gives the
   * room back if the tasks are not written.
   */
  async reserve(projectId: string, adding: number): Promise<() => void> {
    const limit = await this.limits.quota(projectId, 'queuedTasks');
    let seen = this.counts.get(projectId);
    if (!seen || seen.until <= Date.now()) seen = await this.recount(projectId, limit);
    checkQuota('queuedTasks', limit, seen.held, adding);
    seen.held += adding;
    const reservedIn = seen;
    return () => {
      // A count taken since does not hold this reservation: nothing to give back there.
      if (this.counts.get(projectId) === reservedIn) {
        reservedIn.held = Math.max(0, reservedIn.held - adding);
      }
    };
  }

  private recount(projectId: string, limit: number): Promise<Count> {
    let pending = this.counting.get(projectId);
    if (!pending) {
      pending = this.store
        .countQueued(projectId)
        .then((held) => {
          const seen = { held, until: Date.now() + recountAfterMs(limit - held) };
          if (this.counts.size >= COUNTS_MAX) this.counts.clear();
          this.counts.set(projectId, seen);
          return seen;
        })
        .finally(() => this.counting.delete(projectId));
      this.counting.set(projectId, pending);
    }
    return pending;
  }
}
