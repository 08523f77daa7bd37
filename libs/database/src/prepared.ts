import type { Pool, QueryResult, QueryResultRow } from 'pg';
import type { DataSource } from 'typeorm';

/** Data sources behind a transaction pooler, whose `preparedQuery` statements go unnamed. */
const unnamed = new WeakSet<DataSource>();

/**
 * Makes `preparedQuery` on `db` send the same SQL without a statement name (`DATABASE_POOL_MODE`
 * `transaction`: PgBouncer's transaction pooling cannot carry a named statement from one
 * transaction to the next, docs/ha.md).
 */
export function runUnnamed(db: DataSource): void {
  unnamed.add(db);
}

/**
 * Runs one statement of a worker's per-task path as a named prepared statement, straight on the
 * data source's node-postgres pool: each connection parses and plans it once, and TypeORM's
 * per-call query runner is skipped (docs/benchmarks.md, dispatch). For single statements outside
 * a transaction; `name` must always go with the same `text`. Unnamed behind a transaction pooler
 * ({@link runUnnamed}).
 */
export function preparedQuery<R extends QueryResultRow>(
  db: DataSource,
  name: string,
  text: string,
  values: unknown[],
): Promise<QueryResult<R>> {
  if (unnamed.has(db)) return poolOf(db).query<R>(text, values);
  return poolOf(db).query<R>({ name, text, values });
}

/**
 * One statement straight on the data source's node-postgres pool, unnamed (its text varies, e.g.
 * with a list's filters), skipping TypeORM's per-call query runner. Outside a transaction.
 */
export function poolQuery<R extends QueryResultRow>(
  db: DataSource,
  text: string,
  values: unknown[],
): Promise<QueryResult<R>> {
  return poolOf(db).query<R>(text, values);
}

function poolOf(db: DataSource): Pool {
  return (db.driver as unknown as { master: Pool }).master;
}
