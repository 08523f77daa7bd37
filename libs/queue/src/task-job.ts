import { isId, isPlainObject } from '@kiln/common';

/** Priorities in dispatch order: IronWorker's 2 is the most urgent. */
export const DISPATCH_ORDER = [2, 1, 0] as const;
export type TaskPriority = (typeof DISPATCH_ORDER)[number];

/**
 * Bull orders prioritised jobs with an O(n) LINSERT (bull #2818), so Kiln keeps one plain FIFO
 * queue per (cluster, priority) and workers drain them in {@link DISPATCH_ORDER}.
 */
export function taskQueueName(cluster: string, priority: TaskPriority): string {
  return `tasks.${cluster}.p${priority}`;
}

/**
 * A task's job carries ids only: the task row in Postgres is the source of truth, and the Bull job
 * id is the task id, so enqueueing a task twice is harmless.
 */
export interface TaskJob {
  taskId: string;
  projectId: string;
}

/** Job data is re-validated where it is consumed: Redis holds whatever anyone wrote to it. */
export function parseTaskJob(data: unknown): TaskJob | null {
  if (!isPlainObject(data) || !isId(data.taskId) || !isId(data.projectId)) return null;
  return { taskId: data.taskId, projectId: data.projectId };
}
