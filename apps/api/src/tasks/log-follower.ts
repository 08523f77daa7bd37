import { Injectable } from '@nestjs/common';
import { FeedMessage, TaskLogFeed } from '@kiln/redis';
import { Task, TaskLogStore, TaskStatus, TasksService, isFinal } from '@kiln/tasks';
import { FollowWatch } from './follow-watch';

/** What a follower of a task's log sees, in order: chunks, then one `end`. */
export type FollowEvent =
  | { kind: 'chunk'; attempt: number; seq: number; data: string }
  | { kind: 'end'; attempt: number; status: TaskStatus };

/** Where a reconnecting follower left off: chunks of `attempt` up to `seq` were seen. */
export interface FollowPosition {
  attempt: number;
  seq: number;
}

/**
 * A task's log as it grows: the stored chunks first, then each chunk as the worker publishes it
 * (Redis pub/sub, `TaskLogFeed`), until the task has a final status. It holds no state beyond one
 * request, so it works behind any number of API replicas. Chunks are ordered and deduplicated by
 * their seq; a gap in what Redis delivers (a late subscription, a lost message) is read from
 * Postgres, where a chunk is stored before it is published. What Redis never says (it was away,
 * a message was lost) the shared {@link FollowWatch} shows within a second: the follower then
 * reads the task and the store again. While it waits, a follower makes no query of its own.
 */
@Injectable()
export class LogFollower {
  constructor(
    private readonly tasks: TasksService,
    private readonly logs: TaskLogStore,
    private readonly feed: TaskLogFeed,
    private readonly watch: FollowWatch,
  ) {}

  async *follow(
    task: Task,
    signal: AbortSignal,
    after?: FollowPosition,
  ): AsyncGenerator<FollowEvent, void, undefined> {
    const inbox: FeedMessage[] = [];
    let wake: (() => void) | undefined;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };
    let attempt = task.attempt;
    let status = task.status;
    let seq = after && after.attempt === attempt ? after.seq : 0;
    const projectId = task.projectId;
    /** Set when the watch saw what this follower has not: the task and store are read again. */
    let news = false;
    let unsubscribe = (): void => undefined;
    try {
      unsubscribe = await this.feed.subscribe(task.id, (message) => {
        inbox.push(message);
        notify();
      });
    } catch {
      // Redis unreachable: the watch's polls bring the news instead.
    }
    const unwatch = this.watch.watch(task.id, (head) => {
      if (!head || head.attempt !== attempt || head.lastSeq > seq || isFinal(head.status)) {
        news = true;
        notify();
      }
    });
    signal.addEventListener('abort', notify);
    try {
      // The status is read again once subscribed: an end published before that is not missed.
      for (let refresh = true; ;) {
        news = false;
        if (refresh) {
          const fresh = await this.tasks.get(projectId, task.id);
          status = fresh.status;
          if (fresh.attempt > attempt) [attempt, seq] = [fresh.attempt, 0];
        }
        // Status first, then the store: once a status is final, every chunk is stored.
        for (const chunk of await this.logs.readAfter(task.id, seq)) {
          yield { kind: 'chunk', attempt, seq: chunk.seq, data: chunk.data };
          seq = chunk.seq;
        }
        if (isFinal(status)) {
          yield { kind: 'end', attempt, status };
          return;
        }
        refresh = true;
        // Live chunks, until a gap, an end, or news from the watch sends us back to the store.
        for (let live = true; live;) {
          if (signal.aborted) return;
          if (news) break;
          const message = inbox.shift();
          if (!message) {
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          if (message.attempt < attempt) continue; // a stale worker's leftovers
          if (message.attempt > attempt) [attempt, seq] = [message.attempt, 0];
          if (message.kind === 'end') break;
          for (const chunk of message.chunks) {
            if (chunk.seq <= seq) continue;
            if (chunk.seq !== seq + 1) {
              live = false; // missed some: they are in the store
              refresh = false;
              break;
            }
            yield { kind: 'chunk', attempt, seq: chunk.seq, data: chunk.data };
            seq = chunk.seq;
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', notify);
      unwatch();
      unsubscribe();
    }
  }
}

/** Parses `Last-Event-ID` (`<attempt>.<seq>`, as the SSE stream numbers its events). */
export function parsePosition(value: unknown): FollowPosition | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{1,9})\.(\d{1,9})$/.exec(value.trim());
  return match ? { attempt: Number(match[1]), seq: Number(match[2]) } : undefined;
}
