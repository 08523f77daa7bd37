import { Injectable } from '@nestjs/common';
import { TaskLogFeed } from '@kiln/redis';
import { Task, TasksService, isFinal } from '@kiln/tasks';
import { FollowWatch } from './follow-watch';

/**
 * Waits for a task to end without a query of its own while it waits, as a live-log follower
 * does: it hears the `end` the worker publishes on the task's feed (`TaskLogFeed`, after the
 * final status and the whole log are stored; the API publishes one for a queued task it cancels),
 * and the shared {@link FollowWatch} reads every watched task's status once a second for what
 * Redis never said (Redis away, a lost message, the reconciler failing a lost task). On either
 * sign it reads the task: an `end` of an attempt that the task outlived (it was re-queued) is not
 * the end. So a thousand waiting invokes cost Postgres one statement a second, and none holds a
 * database connection while it waits.
 */
@Injectable()
export class TaskEnds {
  constructor(
    private readonly tasks: TasksService,
    private readonly feed: TaskLogFeed,
    private readonly watch: FollowWatch,
  ) {}

  /**
   * The task once its status is final, or undefined when `signal` aborts first (the caller's
   * deadline, the client gone, the API stopping); everything it took is released either way.
   */
  async untilEnded(
    projectId: string,
    taskId: string,
    signal: AbortSignal,
  ): Promise<Task | undefined> {
    /** Set when there is reason to read the task; the first read is after subscribing, so an end published before is not missed. */
    let news = true;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      news = true;
      wake?.();
      wake = undefined;
    };
    const stop = (): void => {
      wake?.();
      wake = undefined;
    };
    let unsubscribe = (): void => undefined;
    try {
      unsubscribe = await this.feed.subscribe(taskId, (message) => {
        if (message.kind === 'end') notify();
      });
    } catch {
      // Redis unreachable: the watch's polls bring the news instead.
    }
    const unwatch = this.watch.watch(taskId, (head) => {
      if (!head || isFinal(head.status)) notify();
    });
    signal.addEventListener('abort', stop);
    try {
      while (!signal.aborted) {
        if (!news) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        news = false;
        const task = await this.tasks.get(projectId, taskId);
        if (isFinal(task.status)) return task;
      }
      return undefined;
    } finally {
      signal.removeEventListener('abort', stop);
      unwatch();
      unsubscribe();
    }
  }
}
