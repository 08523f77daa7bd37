import { newId } from '@kiln/common';
import { Task } from './task.entity';

/**
 * A new task that runs `task` again, on the same code revision (what the user asked to run),
 * after `delaySeconds`.
 */
export function retryOf(task: Task, delaySeconds: number): Task {
  const now = new Date();
  return Object.assign(new Task(), {
    id: newId(now),
    projectId: task.projectId,
    codeId: task.codeId,
    codeRevisionId: task.codeRevisionId,
    codeName: task.codeName,
    codeRev: task.codeRev,
    status: 'queued',
    attempt: 0,
    percent: 0,
    msg: '',
    logSize: 0,
    priority: task.priority,
    payload: task.payload,
    timeout: task.timeout,
    delay: delaySeconds,
    cluster: task.cluster,
    label: task.label,
    runAt: new Date(now.getTime() + delaySeconds * 1000),
    createdAt: now,
    updatedAt: now,
    originalTaskId: task.id,
    retryCount: task.retryCount + 1,
    scheduleId: task.scheduleId,
    // The user asked to hear when their work ends: a retry ends it too.
    webhook: task.webhook,
    // Part of the same trace as the task it retries.
    traceparent: task.traceparent,
  } satisfies Partial<Task>);
}
