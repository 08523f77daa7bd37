import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { runUnnamed } from './prepared';

/**
 * The TypeORM connection shared by every app. The schema comes from `migrations/` only
 * (`npm run migrate`); `synchronize` stays off everywhere.
 */
export interface DatabaseOptions {
  /**
   * Keep trying to connect at start for as long as it takes (the worker: it holds outcomes to
   * record and containers to recover, and must not exit because Postgres is still away).
   * Otherwise about 20 s, then the process exits.
   */
  waitForever?: boolean;
}

@Module({})
export class DatabaseModule {
  static forRoot(options: DatabaseOptions = {}): DynamicModule {
    // Read by the options factory below, used by the data source factory after it.
    let poolMode: KilnConfig['databasePoolMode'] = 'session';
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRootAsync({
          inject: [KILN_CONFIG],
          useFactory: (config: KilnConfig) => {
            poolMode = config.databasePoolMode;
            return {
              type: 'postgres' as const,
              url: config.databaseUrl,
              autoLoadEntities: true,
              synchronize: false,
              migrationsRun: false,
              retryAttempts: options.waitForever ? Infinity : 20,
              retryDelay: 1000,
              // A request waits at most 5 s for a connection, then fails over to a 503.
              extra: { max: config.databasePoolMax, connectionTimeoutMillis: 5000 },
            };
          },
          // Behind a transaction pooler (PgBouncer), one client's consecutive statements may go
          // to different server connections: a named statement prepared on one is unknown on
          // the next, so `preparedQuery` sends its statements unnamed there (docs/ha.md).
          dataSourceFactory: (dataSourceOptions) => {
            const db = new DataSource(dataSourceOptions!);
            if (poolMode === 'transaction') runUnnamed(db);
            return Promise.resolve(db);
          },
        }),
      ],
    };
  }
}
