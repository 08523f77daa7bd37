import { isId, isPlainObject } from '@kiln/common';

/** Priorities in dispatch order: IronWorker's 2 is the most urgent. */
export const DISPATCH_ORDER = [2, 1, 0] as const;
export type TaskPriority = (typeof DISPATCH_ORDER)[number];

/**
 * Bull orders prioritised jobs with an O(n) LINSERT (bull #2818), so Kiln keeps plain FIFO queues,
 * one per (cluster, project, priority): workers serve a cluster's projects in turn and each
 * project's queues in {@link DISPATCH_ORDER} (libs/queue/src/task-claims.ts;
 * docs/decisions/0006-fair-queues.md).
 */
export function taskQueueName(cluster: string, projectId: string, priority: TaskPriority): string {
  // `/` is in no cluster name, so no name of this form is also a shared queue's name.
  return `tasks.${cluster}/${projectId}.p${priority}`;
}

/**
 * The queue of (cluster, priority) that held every project's tasks before queues were per
 * project: workers still drain it first, so jobs enqueued before an upgrade are not stranded.
 */
export function sharedQueueName(cluster: string, priority: TaskPriority): string {
  return `tasks.${cluster}.p${priority}`;
}

/** The Redis keys of a Bull queue (Bull's `toKey`: `<prefix>:<queue>:<type>`). */
export function queueKeys(prefix: string, queue: string) {
  const base = `${prefix}:${queue}:`;
  return {
    /** The job key prefix: a job is the hash `<base><job id>`. */
    jobs: base,
    wait: `${base}wait`,
    paused: `${base}paused`,
    metaPaused: `${base}meta-paused`,
  };
}

/**
 * A cluster's keys of Kiln's own, beside Bull's queues: `ring`, the list of projects with jobs
 * waiting, in the order workers serve them; `members`, the same projects as a set (so a project
 * is in the ring once); `waiting`, the channel that wakes the cluster's workers; `queues`, what
 * its per-project queue names start with.
 */
export function clusterKeys(prefix: string, cluster: string) {
  return {
    ring: `${prefix}:tasks.${cluster}:ring`,
    members: `${prefix}:tasks.${cluster}:ring-members`,
    waiting: `${prefix}:tasks.${cluster}:waiting`,
    queues: `${prefix}:tasks.${cluster}/`,
  };
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
