import { FINAL_STATUSES, TaskStatus } from './task-status';

/** Who changes a task's status. */
export type TaskActor = 'api' | 'worker' | 'reconciler';

/** The webhook event a status change emits (the `tasks_webhook_status` trigger): none for `preparing`. */
export type TaskEvent = `task.${Exclude<TaskStatus, 'preparing'>}`;

export interface TaskTransition {
  from: readonly TaskStatus[];
  to: TaskStatus;
  by: TaskActor;
  /** The method of {@link TaskLifecycle} (or the service) that makes it. */
  how: string;
}

const TAKEN: readonly TaskStatus[] = ['preparing', 'running'];
const LIVE: readonly TaskStatus[] = ['queued', 'preparing', 'running'];

/**
 * Every status change a task can make, and who makes it. A task is created `queued` (API creates,
 * schedule fires, automatic and manual retries); final statuses are final. Each statement that
 * changes a status builds its `WHERE status IN (…)` from this table ({@link sqlFrom}), so the
 * table is the one place a change is allowed or refused; each change emits {@link eventOf}.
 */
export const TASK_TRANSITIONS: readonly TaskTransition[] = [
  { from: ['queued'], to: 'preparing', by: 'worker', how: 'take' },
  { from: ['preparing'], to: 'running', by: 'worker', how: 'markRunning' },
  ...FINAL_STATUSES.filter((status) => status !== 'cancelled').map((to) => ({
    from: TAKEN,
    to,
    by: 'worker' as const,
    how: 'finish',
  })),
  { from: TAKEN, to: 'queued', by: 'worker', how: 'release' },
  { from: LIVE, to: 'cancelled', by: 'api', how: 'cancel' },
  { from: TAKEN, to: 'queued', by: 'reconciler', how: 'requeueLapsed' },
  { from: TAKEN, to: 'error', by: 'reconciler', how: 'failLapsed' },
];

/** The statuses `by` may move a task from to `to`; empty when it may not. */
export function allowedFrom(to: TaskStatus, by: TaskActor): TaskStatus[] {
  const from = new Set<TaskStatus>();
  for (const transition of TASK_TRANSITIONS) {
    if (transition.to === to && transition.by === by) transition.from.forEach((s) => from.add(s));
  }
  return [...from];
}

export function mayChange(from: TaskStatus, to: TaskStatus, by: TaskActor): boolean {
  return allowedFrom(to, by).includes(from);
}

/**
 * `status IN ('a', 'b')` for a statement that moves tasks to `to` as `by` (`column` names the
 * status column, e.g. `t.status`). Built once at module load: the statements stay constant text
 * (prepared statements keep their plans). Throws if the table allows no such change.
 */
export function sqlFrom(to: TaskStatus, by: TaskActor, column = 'status'): string {
  const from = allowedFrom(to, by);
  if (from.length === 0) throw new Error(`no transition to ${to} by ${by}`);
  return `${column} IN (${from.map((status) => `'${status}'`).join(', ')})`;
}

/** The webhook event a change to `to` emits, if any. */
export function eventOf(to: TaskStatus): TaskEvent | null {
  return to === 'preparing' ? null : `task.${to}`;
}
