/**
 * Reading what TypeORM's `DataSource.query` returns for statements other than SELECT: pg's
 * result comes back as `[rows, rowCount]` for UPDATE and DELETE.
 */

/** pg's UPDATE/DELETE result through TypeORM's `query` is `[rows, rowCount]`. */
export function affected(result: unknown): number {
  return Array.isArray(result) && typeof result[1] === 'number' ? result[1] : 0;
}

/** The rows of a query: a SELECT gives them as they are, an UPDATE … RETURNING as `[rows, rowCount]`. */
export function rowsOf<T>(result: unknown): T[] {
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  ) {
    return result[0] as T[];
  }
  return result as T[];
}
