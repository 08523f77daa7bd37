import { formatTime } from '@kiln/common';
import type { Task } from '@kiln/tasks';

/**
 * A task in IronWorker's exact types: `code_rev` a string (Go decodes it as one), `duration` in
 * ms and `timeout` always present as ints, RFC3339 times with the zero time for unset ones, and
 * `msg` empty on success.
 */
export function taskJson(task: Task) {
  return {
    id: task.id,
    project_id: task.projectId,
    code_id: task.codeId,
    code_history_id: task.codeRevisionId,
    code_name: task.codeName,
    code_rev: String(task.codeRev),
    status: task.status,
    priority: task.priority,
    payload: task.payload,
    timeout: task.timeout,
    delay: task.delay,
    cluster: task.cluster,
    label: task.label,
    created_at: formatTime(task.createdAt),
    updated_at: formatTime(task.updatedAt),
    start_time: formatTime(task.startTime),
    end_time: formatTime(task.endTime),
    duration: task.durationMs ?? 0,
    run_times: task.startTime || task.endTime ? Math.max(task.attempt, 1) : 0,
    percent: task.percent,
    msg: task.msg,
    log_size: task.logSize,
    retry_count: task.retryCount,
    ...(task.originalTaskId ? { original_task_id: task.originalTaskId } : {}),
    ...(task.retryTaskId ? { retry_task_id: task.retryTaskId } : {}),
    ...(task.scheduleId ? { schedule_id: task.scheduleId } : {}),
    ...(task.webhook ? { webhook: task.webhook } : {}),
  };
}

/** A task without its payload: for lists of tasks that link to each one (a retry chain). */
export function taskSummaryJson(task: Task) {
  const { payload: _payload, ...summary } = taskJson(task);
  return summary;
}
