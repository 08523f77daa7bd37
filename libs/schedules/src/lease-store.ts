import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { rowsOf } from '@kiln/database';

/**
 * The `leader_leases` table: one row per lease, taken when free or expired and renewed by its
 * holder, with expiry on the database clock. `term` grows at every change of holder (the fencing
 * token). The decisions (when to renew, how long to believe) are the caller's.
 */
@Injectable()
export class LeaseStore {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Takes `name` for `holder` for `seconds` if free or expired, or extends it if held: the term, or null. */
  async claim(name: string, holder: string, seconds: number): Promise<number | null> {
    const rows = rowsOf<{ term: string }>(
      await this.db.query(
        `INSERT INTO leader_leases AS l (name, holder, term, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))
         ON CONFLICT (name) DO UPDATE
           SET holder = $2,
               term = CASE WHEN l.holder = $2 AND l.expires_at > now() THEN l.term ELSE l.term + 1 END,
               expires_at = now() + make_interval(secs => $3)
         WHERE l.holder = $2 OR l.expires_at <= now()
         RETURNING term`,
        [name, holder, seconds],
      ),
    );
    return rows[0] ? Number(rows[0].term) : null;
  }

  /** Ends `holder`'s lease at once, so the next holder need not wait it out. */
  async expire(name: string, holder: string): Promise<void> {
    await this.db.query(
      `UPDATE leader_leases SET expires_at = now() WHERE name = $1 AND holder = $2`,
      [name, holder],
    );
  }

  /** Inside a transaction: true only if `holder` still holds `name` at `term` (and keeps it so). */
  async holds(
    manager: EntityManager,
    name: string,
    holder: string,
    term: number,
  ): Promise<boolean> {
    const rows = await manager.query<unknown[]>(
      `SELECT 1 FROM leader_leases
        WHERE name = $1 AND holder = $2 AND term = $3 AND expires_at > now()
        FOR SHARE`,
      [name, holder, term],
    );
    return rows.length === 1;
  }
}
