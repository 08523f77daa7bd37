export * from './database.module';
export * from './errors';
export * from './prepared';
export * from './results';
export * from './database-health';
export * from './hydrate';
