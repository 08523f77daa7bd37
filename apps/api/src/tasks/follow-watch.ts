import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { LogHead, TaskLogStore } from '@kiln/tasks';

/** How often the followed tasks are read again, whatever Redis says. */
export const FOLLOW_POLL_MS = 1000;
/** Task ids per statement. */
const BATCH = 1000;
/** A failed read is logged at most this often. */
const WARN_EVERY_MS = 60_000;

/** Hears a followed task's head; `undefined` when the task is gone. */
export type HeadListener = (head: LogHead | undefined) => void;

/**
 * The safety net under live-log followers, shared by all of them in the API process: every
 * `FOLLOW_POLL_MS`, one statement (`TaskLogStore.heads`) reads the status, attempt and last
 * stored chunk of every followed task, and each follower hears its own. A follower gets its news
 * from Redis (`TaskLogFeed`) and turns to Postgres only when this shows something Redis did not
 * tell it (a lost message, Redis away, a new attempt). So an idle follower costs no query of
 * its own and holds no database connection while it waits, and a thousand of them cost Postgres
 * one statement a second.
 */
@Injectable()
export class FollowWatch implements OnApplicationShutdown {
  private readonly logger = new Logger(FollowWatch.name);
  private readonly listeners = new Map<string, Set<HeadListener>>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private warnedAt = 0;
  /** Settable by tests. */
  pollMs = FOLLOW_POLL_MS;

  constructor(private readonly logs: TaskLogStore) {}

  /** Calls `listener` with the task's head at every poll until the returned function is called. */
  watch(taskId: string, listener: HeadListener): () => void {
    let set = this.listeners.get(taskId);
    if (!set) this.listeners.set(taskId, (set = new Set()));
    set.add(listener);
    this.timer ??= setInterval(() => void this.poll(), this.pollMs).unref();
    return () => {
      const current = this.listeners.get(taskId);
      if (!current?.delete(listener) || current.size > 0) return;
      this.listeners.delete(taskId);
      if (this.listeners.size === 0) this.stop();
    };
  }

  /** Followed tasks (for tests and the benchmark's checks). */
  get watched(): number {
    return this.listeners.size;
  }

  /** Reads every followed task's head and tells its listeners; skipped while one is running. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const ids = [...this.listeners.keys()];
      for (let start = 0; start < ids.length; start += BATCH) {
        const batch = ids.slice(start, start + BATCH);
        const heads = await this.logs.heads(batch);
        for (const id of batch) {
          for (const listener of this.listeners.get(id) ?? []) listener(heads.get(id));
        }
      }
    } catch (error) {
      // Postgres away: followers still hear Redis, and the next poll tries again.
      if (Date.now() - this.warnedAt > WARN_EVERY_MS) {
        this.warnedAt = Date.now();
        this.logger.warn(`followed tasks not read: ${(error as Error).message}`);
      }
    } finally {
      this.polling = false;
    }
  }

  onApplicationShutdown(): void {
    this.stop();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
