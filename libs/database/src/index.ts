export * from './database.module';
export * from './errors';
