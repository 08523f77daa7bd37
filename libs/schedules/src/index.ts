export * from './schedule.entity';
export * from './schedule-spec';
export * from './schedules.service';
export * from './schedules.module';
export * from './timing';
export * from './lease-store';
export * from './schedule-store';
