import { LIMITS } from '@kiln/client';
import {
  AllowEntry,
  DEFAULT_CLUSTER,
  checkClusterName,
  FieldReader,
  JsonObject,
  KilnException,
  isPlainObject,
  parseWebhookUrl,
} from '@kiln/common';
import type { KilnConfig } from '@kiln/config';
import type { TaskPriority } from '@kiln/queue';

export const MAX_TASKS_PER_REQUEST = 100;
export const MAX_DELAY_SECONDS = LIMITS.delay[1];

export interface TaskLimits {
  defaultTimeout: number;
  maxTimeout: number;
  maxPayloadBytes: number;
  /** Where a task's `webhook` may point despite being private (`WEBHOOK_ALLOWED_HOSTS`); default none. */
  webhookAllowedHosts?: readonly AllowEntry[];
}

/** The limits a task queued through the API is checked against, from the configuration. */
export function taskLimitsOf(config: KilnConfig): TaskLimits {
  return { ...config.tasks, webhookAllowedHosts: config.webhooks.allowedHosts };
}

/** One task as asked for; `priority` undefined means "the code's default". */
export interface TaskSpec {
  codeName: string;
  payload: string;
  priority: TaskPriority | undefined;
  timeout: number;
  delay: number;
  cluster: string;
  label: string;
  /** URL called (from the webhook outbox) when the task ends; null = none. */
  webhook: string | null;
}

/**
 * Parses `{"tasks":[…]}`. Tolerates ironcli's `priority: -3` and `timeout: 0` (both "unset"),
 * float seconds from Go, `payload: ""`, `cluster: ""` and unknown keys; anything else that is off
 * rejects the whole request, naming the task and the field.
 */
export function parseTaskSpecs(body: JsonObject, limits: TaskLimits): TaskSpec[] {
  const tasks = body.tasks;
  if (!Array.isArray(tasks)) {
    throw KilnException.badRequest('tasks must be an array of task objects');
  }
  if (tasks.length === 0) throw KilnException.badRequest('tasks must hold at least one task');
  if (tasks.length > MAX_TASKS_PER_REQUEST) {
    throw KilnException.badRequest(
      `at most ${MAX_TASKS_PER_REQUEST} tasks can be queued per request`,
    );
  }
  return tasks.map((task, index) => {
    if (!isPlainObject(task)) throw KilnException.badRequest(`tasks[${index}] must be an object`);
    return parseTaskSpec(task, limits, `tasks[${index}].`);
  });
}

export function parseTaskSpec(task: JsonObject, limits: TaskLimits, prefix = ''): TaskSpec {
  const read = new FieldReader(task, prefix);
  const payload = read.string('payload', limits.maxPayloadBytes) ?? '';
  const timeout = read.int('timeout', { min: 0, max: limits.maxTimeout }) ?? 0;
  return {
    codeName: read.requiredString('code_name', 255),
    payload,
    priority: read.lenientInt('priority', ...LIMITS.priority) as TaskPriority | undefined,
    timeout: timeout === 0 ? limits.defaultTimeout : timeout,
    delay: read.int('delay', { min: 0, max: MAX_DELAY_SECONDS }) ?? 0,
    cluster: readCluster(read),
    label: read.string('label', 1024) ?? '',
    webhook: webhookOf(read, limits, prefix),
  };
}

/** `cluster`: a worker cluster's name, `default` when absent or empty. */
export function readCluster(read: FieldReader): string {
  const cluster = read.string('cluster') ?? '';
  if (cluster === '') return DEFAULT_CLUSTER;
  return checkClusterName(cluster, read.label('cluster'));
}

function webhookOf(read: FieldReader, limits: TaskLimits, prefix: string): string | null {
  const url = read.string('webhook');
  if (url === undefined || url === '') return null;
  return parseWebhookUrl(url, limits.webhookAllowedHosts ?? [], `${prefix}webhook`);
}
