import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { SecretBox, SecretKeys, sealedContext } from '@kiln/common';
import { KILN_CONFIG } from '@kiln/config';
import { affected, rowsOf } from '@kiln/database';
import { AttemptReport, Circuit, CircuitSettings, CircuitState, nextCircuit } from './circuit';
import { Candidate, FairLimits, InFlight, pickFair } from './fair-pick';
import { newWebhookSecret } from './signing';

/** The Postgres NOTIFY channel that wakes the delivery loop (the outbox triggers notify it too). */
export const WEBHOOK_CHANNEL = 'kiln_webhooks';

export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'dropped';

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
  /** The endpoint it goes to: the subscription's id, or `url:<project>:<origin>`. */
  endpointKey: string;
  /** Taken as the probe of the endpoint's open circuit. */
  probe: boolean;
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
  /** When the event happened (the delivery was made): `kiln_webhook_delivery_lag_seconds`. */
  createdAt: Date;
  eventType: string;
  /** The trace of the task it is about (docs/operations.md, "Traces"); null untraced. */
  traceparent: string | null;
}

export interface AttemptOutcome {
  state: DeliveryState;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** For `pending`: seconds until the next try. */
  retryInSeconds?: number;
  /** No connection could be made: parks the endpoint at once. */
  unreachable?: boolean;
  /** A 410 Gone: the endpoint asked to be forgotten. */
  gone?: boolean;
}

/** An endpoint's circuit and backlog, as a subscription shows them. */
export interface EndpointState {
  circuit: CircuitState;
  failures: number;
  nextProbeAt: Date | null;
  lastError: string | null;
  pending: number;
  dropped: number;
}

/** An endpoint that has never failed and holds nothing (no `webhook_endpoints` row). */
export const FRESH_ENDPOINT: EndpointState = {
  circuit: 'closed',
  failures: 0,
  nextProbeAt: null,
  lastError: null,
  pending: 0,
  dropped: 0,
};

/** An endpoint whose circuit was disabled by the outcomes just recorded. */
export interface DisabledEndpoint {
  key: string;
  reason: string;
}

interface EndpointRow {
  key: string;
  circuit: CircuitState;
  failures: number;
  probes: number;
  opened_at: Date | null;
  probe_at: Date | null;
  last_error: string | null;
}

/** The endpoints with pending deliveries, one index probe each (a loose index scan). */
const PENDING_ENDPOINTS = `
  RECURSIVE pending_endpoints(key) AS (
    (SELECT endpoint_key FROM webhook_deliveries WHERE state = 'pending'
      ORDER BY endpoint_key LIMIT 1)
    UNION ALL
    SELECT (SELECT d.endpoint_key FROM webhook_deliveries d
             WHERE d.state = 'pending' AND d.endpoint_key > p.key
             ORDER BY d.endpoint_key LIMIT 1)
      FROM pending_endpoints p WHERE p.key IS NOT NULL)`;

interface ClaimRow {
  id: string;
  project_id: string;
  endpoint_key: string;
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
  created_at: Date;
  event_type: string;
  traceparent: string | null;
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
 * with a compare-and-set (several processes may deliver), and a lease that runs out — its process
 * died mid-delivery — makes the row due again. Nothing about a delivery lives only in memory.
 */
@Injectable()
export class WebhookOutbox {
  private readonly box: SecretBox;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(KILN_CONFIG) keys: SecretKeys,
  ) {
    this.box = SecretBox.from(keys);
  }

  /**
   * Leases due deliveries for `leaseSeconds`, counting an attempt, shared fairly: it looks at the
   * endpoints that have pending deliveries (not at the backlog behind them), offers from each up
   * to `limits.perEndpoint` of its oldest due ones, and takes them by {@link pickFair}. They are
   * offered in due order, so that of projects (or endpoints) with as many in flight the one that
   * has waited longest goes first (in key order, an endpoint whose key sorts late would starve
   * while others of its project keep freeing and retaking their slots). A parked endpoint (open
   * circuit) offers one delivery, its probe, once `probe_at` has come; a disabled one offers none. A delivery waits while an earlier one of the same task to the same endpoint is
   * pending, so that a task's events reach each endpoint one at a time, in order. Nothing is
   * locked while choosing: the UPDATE takes a row only if it is still due, so that of two
   * processes choosing the same row one gets it.
   */
  async claim(
    limits: FairLimits,
    inFlight: InFlight,
    leaseSeconds: number,
  ): Promise<ClaimedDelivery[]> {
    if (limits.free <= 0) return [];
    const full = [...inFlight.endpoints]
      .filter(([, count]) => count >= limits.perEndpoint)
      .map(([key]) => key);
    const offered = await this.db.query<(Candidate & { probe: boolean })[]>(
      `WITH ${PENDING_ENDPOINTS}
       SELECT c.id, c.project_id AS "projectId", c.endpoint_key AS "endpointKey",
              coalesce(e.circuit = 'open', false) AS probe
         FROM pending_endpoints p
         LEFT JOIN webhook_endpoints e ON e.key = p.key
        CROSS JOIN LATERAL (
          SELECT d.id, d.project_id, d.endpoint_key, d.next_attempt_at, d.seq
            FROM webhook_deliveries d
           WHERE d.endpoint_key = p.key AND d.state = 'pending' AND d.next_attempt_at <= now()
             AND NOT EXISTS (
               SELECT 1 FROM webhook_deliveries o
                WHERE o.endpoint_key = d.endpoint_key AND o.task_id = d.task_id
                  AND o.state = 'pending' AND o.seq < d.seq
               OFFSET 0)
           ORDER BY d.next_attempt_at, d.seq
           LIMIT CASE WHEN e.circuit = 'open' THEN 1 ELSE $1 END) c
        WHERE p.key IS NOT NULL AND NOT (p.key = ANY ($2::text[]))
          AND e.circuit IS DISTINCT FROM 'disabled'
          AND (e.circuit IS DISTINCT FROM 'open' OR e.probe_at <= now())
        ORDER BY c.next_attempt_at, c.seq`,
      [limits.perEndpoint, full],
    );
    const picked = pickFair(offered, inFlight, limits);
    if (picked.length === 0) return [];
    const probes = new Set(picked.filter((c) => c.probe).map((c) => c.endpointKey));
    let won = new Set<string>();
    if (probes.size > 0) {
      // The probe's turn is taken with the delivery: probe_at moves past the lease, so that no
      // other process (or the next claim) sends a second probe meanwhile.
      // An UPDATE's result is `[rows, rowCount]`: read through rowsOf, or no probe is ever won.
      const rows = rowsOf<{ key: string }>(
        await this.db.query(
          `UPDATE webhook_endpoints SET probe_at = now() + make_interval(secs => $2), updated_at = now()
            WHERE key = ANY ($1::text[]) AND circuit = 'open' AND probe_at <= now()
            RETURNING key`,
          [[...probes], leaseSeconds],
        ),
      );
      won = new Set(rows.map((row) => row.key));
    }
    const ids = picked
      .filter((c) => !probes.has(c.endpointKey) || won.has(c.endpointKey))
      .map((c) => c.id);
    if (ids.length === 0) return [];
    const rows = await this.db.query<ClaimRow[]>(
      `WITH claimed AS (
         UPDATE webhook_deliveries d
            SET attempt = d.attempt + 1, updated_at = now(),
                next_attempt_at = now() + make_interval(secs => $2)
          WHERE d.id = ANY ($1::bpchar[]) AND d.state = 'pending' AND d.next_attempt_at <= now()
         RETURNING d.id, d.seq, d.project_id, d.endpoint_key, d.webhook_id, d.url, d.message_id,
                   d.body, d.attempt, d.retry_base, d.created_at, d.event_type, d.task_id)
       SELECT c.id, c.project_id, c.endpoint_key, c.webhook_id, c.message_id, c.body, c.attempt,
              c.retry_base, c.created_at, c.event_type,
              (SELECT t.traceparent FROM tasks t WHERE t.id = c.task_id) AS traceparent,
              c.url AS task_url, w.url AS webhook_url, w.enabled, w.secret,
              CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret,
              s.secret AS project_secret
         FROM claimed c
         LEFT JOIN webhooks w ON w.id = c.webhook_id
         LEFT JOIN project_webhook_secrets s ON c.webhook_id IS NULL AND s.project_id = c.project_id
        ORDER BY c.seq`,
      [ids, leaseSeconds],
    );
    return rows.map((row) => ({
      id: row.id,
      projectId: row.project_id,
      endpointKey: row.endpoint_key,
      probe: probes.has(row.endpoint_key),
      webhookId: row.webhook_id,
      messageId: row.message_id,
      body: row.body,
      attempt: row.attempt,
      failures: row.attempt - row.retry_base - 1,
      url: row.webhook_id ? (row.webhook_url ?? '') : row.task_url!,
      secrets: this.openSecrets(row),
      endpointEnabled: row.webhook_id ? row.enabled === true : true,
      createdAt: row.created_at,
      eventType: row.event_type,
      traceparent: row.traceparent,
    }));
  }

  /**
   * Records attempts' outcomes, each unless its lease was lost meanwhile (compare-and-set on the
   * attempt), and moves the circuits of the endpoints they were sent to by {@link nextCircuit}
   * in the same transaction. Returns the ids recorded and the endpoints this disabled (for
   * {@link disableEndpoint}, which the caller runs next).
   */
  async record(
    items: { delivery: ClaimedDelivery; outcome: AttemptOutcome }[],
    settings: CircuitSettings,
  ): Promise<{ recorded: Set<string>; disabled: DisabledEndpoint[] }> {
    if (items.length === 0) return { recorded: new Set(), disabled: [] };
    return this.db.transaction(async (tx) => {
      const rows = rowsOf<{ id: string }>(
        await tx.query(
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
      const recorded = new Set(rows.map((row) => row.id));
      // A delivery failed unsent because its owner disabled the subscription says nothing of the
      // endpoint: counted, a backlog of them would open the circuit, probe, and end in a
      // webhook.disabled notice and a reason overwriting the owner's.
      const settled = items.filter(
        (item) => recorded.has(item.delivery.id) && item.delivery.endpointEnabled,
      );
      const disabled = await this.settle(tx, settled, settings);
      return { recorded, disabled };
    });
  }

  /**
   * The circuits after `items`. An endpoint that only delivered is closed with one UPDATE that
   * finds nothing to change in the common case (no row: never failed); one that failed has its
   * row made if missing and locked (in key order, so that two processes cannot deadlock).
   */
  private async settle(
    tx: EntityManager,
    items: { delivery: ClaimedDelivery; outcome: AttemptOutcome }[],
    settings: CircuitSettings,
  ): Promise<DisabledEndpoint[]> {
    const byKey = new Map<string, { delivery: ClaimedDelivery; outcome: AttemptOutcome }[]>();
    for (const item of items) {
      const list = byKey.get(item.delivery.endpointKey) ?? [];
      byKey.set(item.delivery.endpointKey, list);
      list.push(item);
    }
    const healthy = [...byKey]
      .filter(([, list]) => list.every((item) => item.outcome.state === 'delivered'))
      .map(([key]) => key);
    if (healthy.length > 0) {
      await tx.query(
        `UPDATE webhook_endpoints
            SET circuit = 'closed', failures = 0, probes = 0, opened_at = NULL, probe_at = NULL,
                last_error = NULL, updated_at = now()
          WHERE key = ANY ($1::text[]) AND circuit <> 'disabled'
            AND (circuit <> 'closed' OR failures > 0)`,
        [healthy],
      );
    }
    const failing = [...byKey.keys()].filter((key) => !healthy.includes(key)).sort();
    if (failing.length === 0) return [];
    const first = (key: string) => byKey.get(key)![0].delivery;
    await tx.query(
      `INSERT INTO webhook_endpoints (key, project_id, webhook_id)
       SELECT * FROM unnest($1::text[], $2::bpchar[], $3::bpchar[]) ORDER BY 1
       ON CONFLICT (key) DO NOTHING`,
      [
        failing,
        failing.map((key) => first(key).projectId),
        failing.map((key) => first(key).webhookId),
      ],
    );
    const current = await tx.query<EndpointRow[]>(
      `SELECT key, circuit, failures, probes, opened_at, probe_at, last_error
         FROM webhook_endpoints WHERE key = ANY ($1::text[]) ORDER BY key FOR UPDATE`,
      [failing],
    );
    const now = new Date();
    const next: (Circuit & { key: string })[] = [];
    const disabled: DisabledEndpoint[] = [];
    for (const row of current) {
      const before: Circuit = {
        state: row.circuit,
        failures: row.failures,
        probes: row.probes,
        openedAt: row.opened_at,
        probeAt: row.probe_at,
        lastError: row.last_error,
      };
      let circuit = before;
      for (const { delivery, outcome } of byKey.get(row.key) ?? []) {
        const report: AttemptReport = {
          delivered: outcome.state === 'delivered',
          unreachable: outcome.unreachable === true,
          gone: outcome.gone === true,
          probe: delivery.probe,
          error: outcome.error,
        };
        circuit = nextCircuit(circuit, report, settings, now);
      }
      if (circuit.state === 'disabled' && before.state !== 'disabled') {
        disabled.push({ key: row.key, reason: circuit.reason ?? 'Endpoint disabled' });
      }
      next.push({ ...circuit, key: row.key });
    }
    await tx.query(
      `UPDATE webhook_endpoints e
          SET circuit = u.circuit, failures = u.failures, probes = u.probes,
              opened_at = u.opened_at, probe_at = u.probe_at, last_error = u.last_error,
              updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::timestamptz[],
                     $6::timestamptz[], $7::text[])
              AS u(key, circuit, failures, probes, opened_at, probe_at, last_error)
        WHERE e.key = u.key`,
      [
        next.map((c) => c.key),
        next.map((c) => c.state),
        next.map((c) => c.failures),
        next.map((c) => c.probes),
        next.map((c) => c.openedAt),
        next.map((c) => c.probeAt),
        next.map((c) => c.lastError),
      ],
    );
    return disabled;
  }

  /**
   * Ends an endpoint whose circuit was disabled: a subscription is disabled with `reason`; its
   * pending deliveries fail with `Endpoint disabled`; every other enabled subscription of the
   * project gets a signed `webhook.disabled` event. A subscription its owner disabled meanwhile
   * keeps the owner's word (no reason, no notice: they know). A per-task URL's endpoint is then
   * forgotten, so that a later task's `webhook` there starts afresh; its notice names the origin
   * only (a task's full URL may carry a secret of that task's).
   */
  async disableEndpoint(key: string, reason: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const [endpoint] = await tx.query<{ project_id: string; webhook_id: string | null }[]>(
        `SELECT project_id, webhook_id FROM webhook_endpoints WHERE key = $1`,
        [key],
      );
      if (!endpoint) return;
      let url: string | null;
      if (endpoint.webhook_id) {
        const [webhook] = rowsOf<{ url: string }>(
          await tx.query(
            `UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = now()
              WHERE id = $1 AND enabled RETURNING url`,
            [endpoint.webhook_id, reason],
          ),
        );
        url = webhook?.url ?? null;
      } else {
        url = key.slice(`url:${endpoint.project_id}:`.length);
        await tx.query(`DELETE FROM webhook_endpoints WHERE key = $1`, [key]);
      }
      await tx.query(
        `UPDATE webhook_deliveries
            SET state = 'failed', error = 'Endpoint disabled', next_attempt_at = NULL,
                updated_at = now()
          WHERE endpoint_key = $1 AND state = 'pending'`,
        [key],
      );
      if (url === null) {
        await tx.query(`SELECT pg_notify($1, '')`, [WEBHOOK_CHANNEL]);
        return;
      }
      const body = {
        type: 'webhook.disabled',
        timestamp: new Date().toISOString(),
        data: { project_id: endpoint.project_id, webhook_id: endpoint.webhook_id, url, reason },
      };
      await tx.query(
        `INSERT INTO webhook_deliveries
                (id, seq, project_id, webhook_id, message_id, event_type, body, state,
                 created_at, updated_at, next_attempt_at)
         SELECT kiln_delivery_id(s.seq), s.seq, $1, s.webhook_id,
                'msg_' || $2 || '_disabled_' || s.seq, 'webhook.disabled', $3, 'pending',
                now(), now(), now()
           FROM (SELECT nextval('webhook_delivery_seq') AS seq, w.id AS webhook_id
                   FROM webhooks w
                  WHERE w.project_id = $1 AND w.enabled AND w.id IS DISTINCT FROM $4
                  ORDER BY w.id) s`,
        [
          endpoint.project_id,
          endpoint.webhook_id ?? 'url',
          JSON.stringify(body),
          endpoint.webhook_id,
        ],
      );
      await tx.query(`SELECT pg_notify($1, '')`, [WEBHOOK_CHANNEL]);
    });
  }

  /**
   * Closes a subscription's circuit (its owner enabled it again or changed its URL): what it had
   * failed is forgotten; what it dropped stays counted.
   */
  async resetCircuit(webhookId: string): Promise<void> {
    await this.db.query(
      `UPDATE webhook_endpoints
          SET circuit = 'closed', failures = 0, probes = 0, opened_at = NULL, probe_at = NULL,
              last_error = NULL, updated_at = now()
        WHERE key = $1`,
      [webhookId],
    );
    await this.db.query(`SELECT pg_notify($1, '')`, [WEBHOOK_CHANNEL]);
  }

  /**
   * Drops, from every endpoint holding more than `max` pending deliveries, those due earliest
   * beyond the `max` due last (for deliveries never tried, the oldest): state `dropped`, counted on
   * the endpoint; at most `limit` per endpoint a call. Returns how many were dropped. Endpoints
   * under the cap cost an index-only count that stops at `max + 1`.
   */
  async dropOverflow(max: number, limit = 10_000): Promise<number> {
    // Two statements: chosen by ids first, then updated by primary key. As one statement, a
    // planner misled by stale statistics (a backlog grown since the last ANALYZE) joined the
    // choice back to the table row by row: minutes for a sweep of 60,000 rows.
    const over = await this.db.query<{ id: string }[]>(
      `WITH ${PENDING_ENDPOINTS},
       crowded AS MATERIALIZED (
         SELECT p.key FROM pending_endpoints p
          WHERE p.key IS NOT NULL
            AND (SELECT count(*) FROM (
                   SELECT 1 FROM webhook_deliveries d
                    WHERE d.endpoint_key = p.key AND d.state = 'pending'
                    LIMIT $1::int + 1) n) > $1::int)
       SELECT o.id FROM crowded c
        CROSS JOIN LATERAL (
          SELECT d.id FROM webhook_deliveries d
           WHERE d.endpoint_key = c.key AND d.state = 'pending'
           ORDER BY d.next_attempt_at DESC, d.seq DESC OFFSET $1 LIMIT $2) o`,
      [max, limit],
    );
    if (over.length === 0) return 0;
    const rows = await this.db.query<{ dropped: string }[]>(
      `WITH dropped AS (
         UPDATE webhook_deliveries d
            SET state = 'dropped', next_attempt_at = NULL, updated_at = now(),
                error = 'Dropped: the endpoint had more than ' || $2::int || ' pending deliveries'
          WHERE d.id = ANY ($1::bpchar[]) AND d.state = 'pending'
         RETURNING d.endpoint_key, d.project_id, d.webhook_id),
       counted AS (
         INSERT INTO webhook_endpoints (key, project_id, webhook_id, dropped)
         SELECT endpoint_key, min(project_id), min(webhook_id), count(*) FROM dropped
          GROUP BY endpoint_key
         ON CONFLICT (key) DO UPDATE
           SET dropped = webhook_endpoints.dropped + excluded.dropped, updated_at = now())
       SELECT count(*)::text AS dropped FROM dropped`,
      [over.map((row) => row.id), max],
    );
    return Number(rows[0]?.dropped ?? 0);
  }

  /** The circuit and backlog of each of `webhookIds` (closed and empty when never used). */
  async endpointStates(webhookIds: string[]): Promise<Map<string, EndpointState>> {
    const states = new Map<string, EndpointState>();
    for (const id of webhookIds) states.set(id, FRESH_ENDPOINT);
    if (webhookIds.length === 0) return states;
    const rows = await this.db.query<(EndpointRow & { dropped: string | null; pending: string })[]>(
      `SELECT k.key, e.circuit, e.failures, e.probe_at, e.last_error, e.dropped::text,
              (SELECT count(*) FROM webhook_deliveries d
                WHERE d.endpoint_key = k.key AND d.state = 'pending')::text AS pending
         FROM unnest($1::text[]) AS k(key)
         LEFT JOIN webhook_endpoints e ON e.key = k.key`,
      [webhookIds],
    );
    for (const row of rows) {
      states.set(row.key, {
        circuit: row.circuit ?? 'closed',
        failures: row.failures ?? 0,
        nextProbeAt: row.circuit === 'open' ? row.probe_at : null,
        lastError: row.last_error ?? null,
        pending: Number(row.pending),
        dropped: Number(row.dropped ?? 0),
      });
    }
    return states;
  }

  /**
   * A claimed row's signing secrets, opened (they are sealed at rest; see SecretBox). One that
   * does not open (its key was removed) throws: the claim fails loudly rather than sign with
   * something else, and the deliveries are retried when their lease lapses.
   */
  private openSecrets(row: ClaimRow): string[] {
    if (row.webhook_id) {
      const secrets = [
        this.box.read(
          row.secret ?? '',
          sealedContext.webhookSecret(row.project_id, row.webhook_id),
        ),
      ];
      if (row.previous_secret) {
        secrets.push(
          this.box.read(
            row.previous_secret,
            sealedContext.webhookPreviousSecret(row.project_id, row.webhook_id),
          ),
        );
      }
      return secrets.filter((s) => !!s);
    }
    return row.project_secret
      ? [this.box.read(row.project_secret, sealedContext.projectWebhookSecret(row.project_id))]
      : [];
  }

  /** The secret that signs a project's per-task `webhook` calls, made on first use. */
  async projectSecret(projectId: string): Promise<string> {
    const context = sealedContext.projectWebhookSecret(projectId);
    await this.db.query(
      `INSERT INTO project_webhook_secrets (project_id, secret) VALUES ($1, $2)
       ON CONFLICT (project_id) DO NOTHING`,
      [projectId, this.box.store(newWebhookSecret(), context)],
    );
    const [row] = await this.db.query<{ secret: string }[]>(
      `SELECT secret FROM project_webhook_secrets WHERE project_id = $1`,
      [projectId],
    );
    return this.box.read(row.secret, context);
  }

  /**
   * Deletes at most `limit` finished deliveries (delivered, failed, dropped) last changed more
   * than `days` ago; returns how many. One of retention's batches (the scheduler's leader calls
   * it until it deletes fewer than `limit`). A delivery being sent again meanwhile is skipped.
   */
  async prune(days: number, limit: number): Promise<number> {
    return affected(
      await this.db.query(
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries
            WHERE state <> 'pending' AND updated_at < now() - make_interval(days => $1)
            LIMIT $2
            FOR UPDATE SKIP LOCKED)`,
        [days, limit],
      ),
    );
  }

  /**
   * Forgets the endpoints of per-task URLs that have long been healthy and hold nothing (a
   * subscription's row goes with the subscription); returns how many.
   */
  async pruneIdleEndpoints(): Promise<number> {
    return affected(
      await this.db.query(
        `DELETE FROM webhook_endpoints e
          WHERE e.webhook_id IS NULL AND e.circuit = 'closed' AND e.dropped = 0
            AND e.updated_at < now() - make_interval(days => 1)
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                             WHERE d.endpoint_key = e.key AND d.state = 'pending')`,
      ),
    );
  }

  /** A subscription's deliveries, newest first. */
  async list(webhookId: string, page: number, perPage: number): Promise<DeliveryRecord[]> {
    return this.listWhere('webhook_id = $1', [webhookId], page, perPage);
  }

  /**
   * One task's deliveries, to subscriptions and to its own `webhook` URL, newest first (over
   * `webhook_deliveries_task_idx`).
   */
  async listOfTask(
    projectId: string,
    taskId: string,
    page: number,
    perPage: number,
  ): Promise<DeliveryRecord[]> {
    return this.listWhere('task_id = $1 AND project_id = $2', [taskId, projectId], page, perPage);
  }

  private async listWhere(
    where: string,
    params: unknown[],
    page: number,
    perPage: number,
  ): Promise<DeliveryRecord[]> {
    const n = params.length;
    const rows = await this.db.query<DeliveryRow[]>(
      `SELECT id, webhook_id, message_id, event_type, task_id, schedule_id, attempt, status_code,
              error, duration_ms, state, created_at, next_attempt_at
         FROM webhook_deliveries WHERE ${where}
        ORDER BY seq DESC OFFSET $${n + 1} LIMIT $${n + 2}`,
      [...params, page * perPage, perPage],
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
