import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';

interface ColumnMap {
  column: string;
  property: string;
  from?: (value: unknown) => unknown;
}

/**
 * Turns the rows of a plain `SELECT *` of an entity's table into entities, as TypeORM's `find`
 * would (each column under its property, through the column's transformer), without its query
 * builder: for the API's hot reads (docs/benchmarks.md, "reads"). The column list comes from the
 * entity's metadata once; node-postgres has already parsed each value (numbers, dates, text), as
 * it does for TypeORM. Only for entities of plain columns: no relations, embedded or lazy ones.
 */
export function hydrator<T extends ObjectLiteral>(
  db: DataSource,
  entity: EntityTarget<T>,
): (row: Record<string, unknown>) => T {
  const metadata = db.getMetadata(entity);
  const columns: ColumnMap[] = metadata.columns.map((column) => {
    const transformer = column.transformer;
    if (Array.isArray(transformer)) {
      throw new Error(`${metadata.name}.${column.propertyName}: one transformer at most`);
    }
    return {
      column: column.databaseName,
      property: column.propertyName,
      from: transformer ? (value): unknown => transformer.from(value) as unknown : undefined,
    };
  });
  const prototype = (metadata.target as { prototype: object }).prototype;
  return (row) => {
    const entityValue = Object.create(prototype) as Record<string, unknown>;
    for (const { column, property, from } of columns) {
      const value = row[column];
      // As TypeORM: a transformer sees every value, null too.
      entityValue[property] = from ? from(value) : value;
    }
    return entityValue as T;
  };
}

/**
 * The entity's columns as a select list (`"id", "project_id", …`), for the statements whose
 * rows {@link hydrator} reads. A named prepared statement must name its columns: with `SELECT *`,
 * a column added later (an online migration) changes its result type, and Postgres refuses every
 * later execution on a connection that prepared it ("cached plan must not change result type").
 */
export function selectColumns<T extends ObjectLiteral>(
  db: DataSource,
  entity: EntityTarget<T>,
  alias?: string,
): string {
  const prefix = alias ? `${alias}.` : '';
  return db
    .getMetadata(entity)
    .columns.map((column) => `${prefix}"${column.databaseName}"`)
    .join(', ');
}
