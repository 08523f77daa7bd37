/** IronWorker's task statuses, names and meanings kept exactly. */
export const TASK_STATUSES = [
  'queued',
  'preparing',
  'running',
  'complete',
  'error',
  'cancelled',
  'killed',
  'timeout',
] as const;

export type TaskStatus = (typeof TASK_STATUSES)[number];

export type FinalStatus = Extract<
  TaskStatus,
  'complete' | 'error' | 'cancelled' | 'killed' | 'timeout'
>;

export const FINAL_STATUSES: readonly FinalStatus[] = [
  'complete',
  'error',
  'cancelled',
  'killed',
  'timeout',
];

export function isFinal(status: TaskStatus): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}
