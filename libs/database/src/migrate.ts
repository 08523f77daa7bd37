import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfig } from '@kiln/config';
import { migrations } from '../../../migrations';

/**
 * Applies pending migrations, holding a Postgres advisory lock so that two processes started at
 * once do not race. Run with `npm run migrate` (after `npm run build`), against
 * `DATABASE_DIRECT_URL`: the lock is a session's, which a transaction pooler would not keep.
 */
export async function migrate(databaseUrl: string): Promise<string[]> {
  const dataSource = new DataSource({ type: 'postgres', url: databaseUrl, migrations });
  await dataSource.initialize();
  try {
    const runner = dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock(482913)');
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      await runner.query('SELECT pg_advisory_unlock(482913)');
      return applied.map((m) => m.name);
    } finally {
      await runner.release();
    }
  } finally {
    await dataSource.destroy();
  }
}

if (require.main === module) {
  migrate(loadConfig().databaseDirectUrl)
    .then((applied) => {
      console.log(applied.length ? `migrated: ${applied.join(', ')}` : 'schema is up to date');
    })
    .catch((error: unknown) => {
      console.error('migration failed:', error instanceof Error ? error.message : error);
      process.exit(1);
    });
}
