export * from './task-status';
export * from './task.entity';
export * from './task-log-chunk.entity';
export * from './task-spec';
export * from './tasks.service';
export * from './task-lifecycle';
export * from './task-log-store';
export * from './tasks.module';
