export * from './task-job';
export * from './task-queues';
export type { ClaimedJob, StaleClaim } from './task-claims';
export * from './queue.module';
