import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { affected, rowsOf } from '@kiln/database';
import { newWebhookSecret } from './signing';

/** The Postgres NOTIFY channel that wakes the delivery loop (the outbox triggers notify it too). */
export const WEBHOOK_CHANNEL = 'kiln_webhooks';

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** A delivery as the delivery log shows it. */
export interface DeliveryRecord {
  id: string;
  webhookId: string | null;
  messageId: string;
  eventType: string;
  taskId: string | null;
  scheduleId: string | null;
  attempt: number;
  statusCode: number | null;
  error: string | null;
  durationMs: number | null;
  state: DeliveryState;
  createdAt: Date;
  nextAttemptAt: Date | null;
}

/** A delivery claimed for one attempt, with what is needed to make it. */
export interface ClaimedDelivery {
  id: string;
  projectId: string;
  webhookId: string | null;
  messageId: string;
  body: string;
  /** This attempt's number (1 = the first). */
  attempt: number;
  /** Failures since the delivery was (re)started: picks the step of the retry schedule. */
  failures: number;
  /** Where to POST: the subscription's current URL, or the task's own `webhook`. */
  url: string;
  /** Signing secrets, newest first; empty when the per-task project secret must be made. */
  secrets: string[];
  /** False when the subscription was disabled (or never existed) since the event. */
  endpointEnabled: boolean;
}

export interface AttemptOutcome {
  state: DeliveryState;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** For `pending`: seconds until the next try. */
  retryInSeconds?: number;
}

interface ClaimRow {
  id: string;
  project_id: string;
  webhook_id: string | null;
  message_id: string;
  body: string;
  attempt: number;
  retry_base: number;
  task_url: string | null;
  webhook_url: string | null;
  enabled: boolean | null;
  secret: string | null;
  previous_secret: string | null;
  project_secret: string | null;
}

interface DeliveryRow {
  id: string;
  webhook_id: string | null;
  message_id: string;
  event_type: string;
  task_id: string | null;
  schedule_id: string | null;
  attempt: number;
  status_code: number | null;
  error: string | null;
  duration_ms: number | null;
  state: DeliveryState;
  created_at: Date;
  next_attempt_at: Date | null;
}

/**
 * The `webhook_deliveries` outbox in Postgres, which is also the delivery queue: the triggers of
 * the migration fill it in the transaction of each status change; {@link claim} leases due rows
 * with `SKIP LOCKED` (several processes may deliver), and a lease that runs out — its process
 * died mid-delivery — makes the row due again. Nothing about a delivery lives only in memory.
 */
@Injectable()
export class WebhookOutbox {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Leases up to `limit` due deliveries for `leaseSeconds`, counting an attempt. A delivery waits
   * while an earlier one of the same task to the same endpoint is pending, so that a task's events
   * reach each endpoint one at a time, in order.
   */
  async claim(limit: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
    const rows = await this.db.query<ClaimRow[]>(
      `WITH next AS (
         SELECT d.id FROM webhook_deliveries d
          WHERE d.state = 'pending' AND d.next_attempt_at <= now()
            AND NOT EXISTS (
              SELECT 1 FROM webhook_deliveries e
               WHERE e.state = 'pending' AND coalesce(e.webhook_id, '') = coalesce(d.webhook_id, '')
                 AND e.task_id = d.task_id AND e.seq < d.seq)
          ORDER BY d.next_attempt_at, d.seq
          LIMIT $1
          FOR UPDATE OF d SKIP LOCKED),
       claimed AS (
         UPDATE webhook_deliveries d
            SET attempt = d.attempt + 1, updated_at = now(),
                next_attempt_at = now() + make_interval(secs => $2)
           FROM next WHERE d.id = next.id
         RETURNING d.id, d.seq, d.project_id, d.webhook_id, d.url, d.message_id, d.body, d.attempt,
                   d.retry_base)
       SELECT c.id, c.project_id, c.webhook_id, c.message_id, c.body, c.attempt, c.retry_base,
              c.url AS task_url, w.url AS webhook_url, w.enabled, w.secret,
              CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
              s.secret AS project_secret
         FROM claimed c
         LEFT JOIN webhooks w ON w.id = c.webhook_id
         LEFT JOIN project_webhook_secrets s ON c.webhook_id IS NULL AND s.project_id = c.project_id
        ORDER BY c.seq`,
      [limit, leaseSeconds],
    );
    return rows.map((row) => ({
      id: row.id,
      projectId: row.project_id,
      webhookId: row.webhook_id,
      messageId: row.message_id,
      body: row.body,
      attempt: row.attempt,
      failures: row.attempt - row.retry_base - 1,
      url: row.webhook_id ? (row.webhook_url ?? '') : row.task_url!,
      secrets: row.webhook_id
        ? [row.secret, row.previous_secret].filter((s): s is string => !!s)
        : row.project_secret
          ? [row.project_secret]
          : [],
      endpointEnabled: row.webhook_id ? row.enabled === true : true,
    }));
  }

  /**
   * Records attempts' outcomes in one statement, each unless its lease was lost meanwhile
   * (compare-and-set on the attempt); returns the ids recorded.
   */
  async record(
    items: { delivery: ClaimedDelivery; outcome: AttemptOutcome }[],
  ): Promise<Set<string>> {
    if (items.length === 0) return new Set();
    const rows = rowsOf<{ id: string }>(
      await this.db.query(
        `UPDATE webhook_deliveries d
            SET state = u.state, status_code = u.status_code, error = u.error,
                duration_ms = u.duration_ms, updated_at = now(),
                next_attempt_at = CASE WHEN u.state = 'pending'
                                       THEN now() + make_interval(secs => u.retry_in) END,
                delivered_at = CASE WHEN u.state = 'delivered' THEN now() END
           FROM unnest($1::bpchar[], $2::int[], $3::text[], $4::int[], $5::text[], $6::int[],
                       $7::float8[]) AS u(id, attempt, state, status_code, error, duration_ms, retry_in)
          WHERE d.id = u.id AND d.attempt = u.attempt AND d.state = 'pending'
          RETURNING d.id`,
        [
          items.map((item) => item.delivery.id),
          items.map((item) => item.delivery.attempt),
          items.map((item) => item.outcome.state),
          items.map((item) => item.outcome.statusCode),
          items.map((item) => item.outcome.error),
          items.map((item) => Math.round(item.outcome.durationMs)),
          items.map((item) => item.outcome.retryInSeconds ?? 0),
        ],
      ),
    );
    return new Set(rows.map((row) => row.id));
  }

  /** A 410 Gone: the endpoint asked to be forgotten. */
  async disable(webhookId: string, reason: string): Promise<void> {
    await this.db.query(
      `UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = now()
        WHERE id = $1 AND enabled`,
      [webhookId, reason],
    );
  }

  /** The secret that signs a project's per-task `webhook` calls, made on first use. */
  async projectSecret(projectId: string): Promise<string> {
    await this.db.query(
      `INSERT INTO project_webhook_secrets (project_id, secret) VALUES ($1, $2)
       ON CONFLICT (project_id) DO NOTHING`,
      [projectId, newWebhookSecret()],
    );
    const [row] = await this.db.query<{ secret: string }[]>(
      `SELECT secret FROM project_webhook_secrets WHERE project_id = $1`,
      [projectId],
    );
    return row.secret;
  }

  /** Deletes finished deliveries last changed before `days` ago; returns how many. */
  async prune(days: number, limit = 10_000): Promise<number> {
    const rows = rowsOf<{ id: string }>(
      await this.db.query(
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries
            WHERE state <> 'pending' AND updated_at < now() - make_interval(days => $1)
            LIMIT $2)
         RETURNING id`,
        [days, limit],
      ),
    );
    return rows.length;
  }

  /** A subscription's deliveries, newest first. */
  async list(webhookId: string, page: number, perPage: number): Promise<DeliveryRecord[]> {
    const rows = await this.db.query<DeliveryRow[]>(
      `SELECT id, webhook_id, message_id, event_type, task_id, schedule_id, attempt, status_code,
              error, duration_ms, state, created_at, next_attempt_at
         FROM webhook_deliveries WHERE webhook_id = $1
        ORDER BY seq DESC OFFSET $2 LIMIT $3`,
      [webhookId, page * perPage, perPage],
    );
    return rows.map((row) => ({
      id: row.id,
      webhookId: row.webhook_id,
      messageId: row.message_id,
      eventType: row.event_type,
      taskId: row.task_id,
      scheduleId: row.schedule_id,
      attempt: row.attempt,
      statusCode: row.status_code,
      error: row.error,
      durationMs: row.duration_ms,
      state: row.state,
      createdAt: row.created_at,
      nextAttemptAt: row.next_attempt_at,
    }));
  }

  /**
   * Sends a delivery again, same `webhook-id` and body, with a fresh retry schedule; a pending one
   * is made due now. False if there is no such delivery of this subscription.
   */
  async redeliver(webhookId: string, deliveryId: string): Promise<boolean> {
    const result: unknown = await this.db.query(
      `UPDATE webhook_deliveries
          SET state = 'pending', next_attempt_at = now(), retry_base = attempt, updated_at = now()
        WHERE id = $1 AND webhook_id = $2`,
      [deliveryId, webhookId],
    );
    if (affected(result) !== 1) return false;
    await this.db.query(`SELECT pg_notify($1, '')`, [WEBHOOK_CHANNEL]);
    return true;
  }
}
