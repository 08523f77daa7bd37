export * from './redis.module';
export * from './redis-health';
export * from './task-signals';
export * from './token-signals';
export * from './redis-epoch';
export * from './task-log-feed';
export * from './rate-limits';
export * from './redis-connection';
