import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

/** Rows counted at most by one read: past it the backlog is "at least this". */
const COUNT_CAP = 100_000;

/** Deliveries due now to endpoints that take them (circuit closed), and the oldest one's wait. */
export interface WebhookBacklogFigures {
  due: number;
  oldestSeconds: number;
}

/**
 * The dispatchers' backlog, for `kiln_webhook_backlog` and `kiln_webhook_backlog_oldest_seconds`:
 * pending deliveries whose time has come, left out those to parked or disabled endpoints (a
 * customer's endpoint that fails is its owner's matter, not the platform's). The count stops at
 * {@link COUNT_CAP} rows, so a huge backlog never makes a slow read. Read by the scheduler's
 * leader at most every few seconds, when scraped.
 */
@Injectable()
export class WebhookBacklog {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async read(): Promise<WebhookBacklogFigures> {
    const [row] = await this.db.query<{ due: number; oldest: number | null }[]>(
      `SELECT count(*)::int AS due,
              greatest(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8 AS oldest
         FROM (SELECT d.next_attempt_at
                 FROM webhook_deliveries d
                 LEFT JOIN webhook_endpoints e ON e.key = d.endpoint_key
                WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                  AND coalesce(e.circuit, 'closed') = 'closed'
                LIMIT $1) due`,
      [COUNT_CAP],
    );
    return { due: row.due, oldestSeconds: row.oldest ?? 0 };
  }
}
