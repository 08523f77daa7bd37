export * from './task-job';
export * from './task-queues';
export type { ClaimedJob, StaleClaim } from './task-claims';
export * from './queue.module';
export * from './redis-health';
export * from './task-signals';
export * from './redis-epoch';
export * from './task-log-feed';
