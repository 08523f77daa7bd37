import type { Task } from './task.entity';

/**
 * A task as a row of the `tasks` table, for `INSERT … SELECT FROM json_populate_recordset`: one
 * statement inserts a whole batch, cheaper than TypeORM's insert builder on the hot path. Every
 * NOT NULL column is given (the record type has no defaults).
 */
export function taskRecord(task: Task): Record<string, unknown> {
  return {
    id: task.id,
    project_id: task.projectId,
    code_id: task.codeId,
    code_revision_id: task.codeRevisionId,
    code_name: task.codeName,
    code_rev: task.codeRev,
    status: task.status,
    priority: task.priority,
    payload: task.payload,
    timeout: task.timeout,
    delay: task.delay,
    cluster: task.cluster,
    label: task.label,
    attempt: 0,
    run_at: task.runAt,
    enqueued_at: task.enqueuedAt ?? null,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    percent: 0,
    msg: '',
    log_size: 0,
    retry_count: task.retryCount ?? 0,
    original_task_id: task.originalTaskId ?? null,
    schedule_id: task.scheduleId ?? null,
    scheduled_for: task.scheduledFor ?? null,
    webhook: task.webhook ?? null,
  };
}

/** The columns every new task starts with, as {@link taskRecord} gives them. */
export const newTaskRecord = {
  status: 'queued',
  attempt: 0,
  percent: 0,
  msg: '',
  log_size: 0,
  retry_count: 0,
  original_task_id: null,
  schedule_id: null,
  scheduled_for: null,
} as const;

export const INSERT_TASKS_SQL = `INSERT INTO tasks SELECT * FROM json_populate_recordset(null::tasks, $1)`;
