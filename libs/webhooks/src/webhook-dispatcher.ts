import { SpanKind, contextOf, currentTraceparent, inSpan } from '@kiln/common';
import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { Client } from 'pg';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import { retryDelaySeconds } from './backoff';
import { signedHeaders } from './signing';
import { AttemptOutcome, ClaimedDelivery, WEBHOOK_CHANNEL, WebhookOutbox } from './webhook-outbox';
import { SendResult, WebhookSender } from './webhook-sender';

/** Poll for due deliveries (retries coming due, missed notifications) at least this often. */
const POLL_MS = 1000;
/** How often backlogs over `KILN_WEBHOOK_MAX_PENDING` are cut back. */
const CAP_EVERY_MS = 5000;
/** A lease outlives the request's total timeout by this much before another process may retry. */
const LEASE_MARGIN_SECONDS = 5;

/**
 * What one attempt's result means: 2xx delivered; 410 failed for good (and the endpoint is
 * disabled); anything else — 3xx (redirects are not followed), 4xx, 5xx, no answer, refused
 * destination — is retried on the schedule until it is used up.
 */
export function outcomeOf(
  result: SendResult,
  failures: number,
  schedule: readonly number[],
): AttemptOutcome {
  const base = { statusCode: result.statusCode, durationMs: result.durationMs };
  const code = result.statusCode;
  if (code !== null && code >= 200 && code < 300) {
    return { ...base, state: 'delivered', error: null };
  }
  if (code === 410) {
    return { ...base, state: 'failed', error: 'Endpoint answered 410 Gone: disabled', gone: true };
  }
  const error =
    result.error ??
    (code !== null && code >= 300 && code < 400
      ? `Redirect (${code}) not followed`
      : `Endpoint answered ${code}`);
  const unreachable = result.unreachable === true;
  const retryIn = retryDelaySeconds(failures + 1, schedule);
  return retryIn === null
    ? { ...base, state: 'failed', error, unreachable }
    : { ...base, state: 'pending', error, retryInSeconds: retryIn, unreachable };
}

/**
 * Delivers webhooks from the outbox, `KILN_WEBHOOK_CONCURRENCY` at a time, of which at most
 * `KILN_WEBHOOK_PROJECT_CONCURRENCY` for one project and `KILN_WEBHOOK_ENDPOINT_CONCURRENCY` to one
 * endpoint, so that one project's backlog or dead endpoints cannot hold every slot. Endpoints
 * that keep failing are parked by their circuit (see {@link nextCircuit}); every 5 s backlogs over
 * `KILN_WEBHOOK_MAX_PENDING` lose their oldest deliveries. It wakes on Postgres NOTIFY from the
 * triggers that fill the outbox, when a slot frees, and every second.
 * Runs in every scheduler replica (not only the leader): claims are leases, so replicas share the
 * work, and a replica killed mid-delivery only delays that delivery until its lease runs out.
 */
@Injectable()
export class WebhookDispatcher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(WebhookDispatcher.name);
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  private listener: Client | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  /** The housekeeping pass in progress, and the timer of the next (off the delivery loop). */
  private house: Promise<void> | undefined;
  private houseTimer: NodeJS.Timeout | undefined;
  /** Attempts in flight in this process, by project and by endpoint. */
  private readonly load = {
    projects: new Map<string, number>(),
    endpoints: new Map<string, number>(),
  };
  /** Outcomes waiting to be written: one UPDATE for all that finished meanwhile (group commit). */
  private outcomes: {
    delivery: ClaimedDelivery;
    outcome: AttemptOutcome;
    done: (recorded: boolean) => void;
    failed: (error: unknown) => void;
  }[] = [];
  private flushing = false;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly outbox: WebhookOutbox,
    private readonly sender: WebhookSender,
    private readonly metrics: KilnMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.webhooks.concurrency === 0) return;
    await this.listen();
    this.loop = this.run();
    this.scheduleHouse();
    this.logger.log(`delivering webhooks, ${this.config.webhooks.concurrency} at a time`);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.wake();
    clearTimeout(this.houseTimer);
    await this.loop;
    await this.house;
    // Deliveries in flight finish (each is bounded by the request timeout); an unfinished one
    // would be retried after its lease anyway.
    await Promise.all(this.inFlight);
    await this.listener?.end().catch(() => undefined);
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async sleep(ms: number): Promise<void> {
    if (this.woken) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeUp = undefined;
  }

  /**
   * LISTENs for the triggers' notifications; a lost connection is retried, polling meanwhile.
   * Straight to Postgres (`DATABASE_DIRECT_URL`): a transaction pooler would drop the LISTEN.
   */
  private async listen(): Promise<void> {
    if (this.stopped) return;
    const client = new Client({ connectionString: this.config.databaseDirectUrl });
    const retry = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => undefined);
      setTimeout(() => void this.listen(), POLL_MS);
    };
    client.on('notification', () => this.wake());
    client.on('error', (error) => {
      this.logger.warn(`webhook LISTEN connection lost: ${error.message}`);
      retry();
    });
    client.on('end', retry);
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${WEBHOOK_CHANNEL}`);
    } catch (error) {
      this.logger.warn(`cannot LISTEN for webhooks (polling): ${(error as Error).message}`);
      retry();
    }
  }

  private async run(): Promise<void> {
    const { concurrency, timeoutMs, projectConcurrency, endpointConcurrency } =
      this.config.webhooks;
    const leaseSeconds = Math.ceil(timeoutMs / 1000) + LEASE_MARGIN_SECONDS;
    while (!this.stopped) {
      this.woken = false;
      const free = concurrency - this.inFlight.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const limits = { free, perProject: projectConcurrency, perEndpoint: endpointConcurrency };
          const batch = await this.outbox.claim(limits, this.load, leaseSeconds);
          claimed = batch.length;
          for (const delivery of batch) this.track(delivery, this.deliver(delivery));
        } catch (error) {
          this.logger.warn(`claiming deliveries failed: ${(error as Error).message}`);
        }
      }
      // Until a notification, a free slot (a full batch may have left more behind) or the poll.
      if (claimed < free || this.inFlight.size >= concurrency) await this.sleep(POLL_MS);
    }
  }

  private track(delivery: ClaimedDelivery, work: Promise<void>): void {
    const count = (map: Map<string, number>, key: string, by: number) => {
      const next = (map.get(key) ?? 0) + by;
      if (next > 0) map.set(key, next);
      else map.delete(key);
    };
    count(this.load.projects, delivery.projectId, 1);
    count(this.load.endpoints, delivery.endpointKey, 1);
    this.inFlight.add(work);
    void work.finally(() => {
      this.inFlight.delete(work);
      count(this.load.projects, delivery.projectId, -1);
      count(this.load.endpoints, delivery.endpointKey, -1);
      this.wake();
    });
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    try {
      const outcome = await this.attempt(delivery);
      await this.record(delivery, outcome);
    } catch (error) {
      // Not recorded: the lease runs out and the delivery is tried again.
      this.logger.warn(`delivery ${delivery.id} not recorded: ${(error as Error).message}`);
    }
  }

  private record(delivery: ClaimedDelivery, outcome: AttemptOutcome): Promise<boolean> {
    return new Promise<boolean>((done, failed) => {
      this.outcomes.push({ delivery, outcome, done, failed });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    const settings = {
      failures: this.config.webhooks.circuitFailures,
      schedule: this.config.webhooks.retrySchedule,
    };
    while (this.outcomes.length > 0) {
      const batch = this.outcomes.splice(0, 500);
      try {
        const { recorded, disabled } = await this.outbox.record(batch, settings);
        for (const endpoint of disabled) await this.disable(endpoint.key, endpoint.reason);
        for (const item of batch) item.done(recorded.has(item.delivery.id));
        this.count(batch.filter((item) => recorded.has(item.delivery.id)));
      } catch (error) {
        for (const item of batch) item.failed(error);
      }
    }
    this.flushing = false;
  }

  /** `kiln_webhook_deliveries_total{result}` and, for those delivered, their lag since the event. */
  private count(items: { delivery: ClaimedDelivery; outcome: AttemptOutcome }[]): void {
    if (!this.metrics.enabled) return;
    const now = Date.now();
    for (const { delivery, outcome } of items) {
      const result =
        outcome.state === 'delivered'
          ? 'delivered'
          : outcome.state === 'pending'
            ? 'retry'
            : 'failed';
      this.metrics.webhookDeliveries.inc({ result });
      if (result === 'delivered') {
        this.metrics.webhookLag.observe(Math.max(0, (now - delivery.createdAt.getTime()) / 1000));
      }
    }
  }

  /** A circuit just disabled: the subscription, its backlog and the notice to the project. */
  private async disable(key: string, reason: string): Promise<void> {
    try {
      await this.outbox.disableEndpoint(key, reason);
      this.logger.warn(`webhook endpoint ${key} disabled: ${reason}`);
    } catch (error) {
      // The circuit stays disabled, so nothing more is sent there; the backlog waits for its owner.
      this.logger.error(`disabling webhook endpoint ${key} failed: ${(error as Error).message}`);
    }
  }

  /** One attempt, in the trace of the task it is about (while tracing is on). */
  private attempt(delivery: ClaimedDelivery): Promise<AttemptOutcome> {
    return inSpan(
      'kiln.webhook.deliver',
      {
        kind: SpanKind.CLIENT,
        parent: contextOf(delivery.traceparent),
        attributes: {
          'kiln.delivery_id': delivery.id,
          'kiln.project_id': delivery.projectId,
          'kiln.event': delivery.eventType,
          'kiln.attempt': delivery.attempt,
        },
      },
      async (span) => {
        const outcome = await this.send(delivery);
        span?.setAttributes({
          'kiln.delivery_state': outcome.state,
          ...(outcome.statusCode === null
            ? {}
            : { 'http.response.status_code': outcome.statusCode }),
        });
        return outcome;
      },
    );
  }

  private async send(delivery: ClaimedDelivery): Promise<AttemptOutcome> {
    if (!delivery.endpointEnabled) {
      return { state: 'failed', statusCode: null, error: 'Endpoint disabled', durationMs: 0 };
    }
    const secrets =
      delivery.secrets.length > 0
        ? delivery.secrets
        : [await this.outbox.projectSecret(delivery.projectId)];
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'Kiln-Webhooks/1',
      ...signedHeaders(secrets, delivery.messageId, Math.floor(Date.now() / 1000), delivery.body),
    };
    // The receiver may continue the trace.
    const traceparent = currentTraceparent();
    if (traceparent) headers.traceparent = traceparent;
    let url: URL;
    try {
      url = new URL(delivery.url);
    } catch {
      return { state: 'failed', statusCode: null, error: 'Invalid URL', durationMs: 0 };
    }
    const result = await this.sender.post(url, headers, delivery.body);
    return outcomeOf(result, delivery.failures, this.config.webhooks.retrySchedule);
  }

  /**
   * Every 5 s, beside the delivery loop (a slow sweep must never hold deliveries up): cuts
   * backlogs over the cap back. Old deliveries are deleted by the scheduler's leader with the
   * rest of retention (apps/scheduler/src/retention-purger.ts).
   */
  private scheduleHouse(): void {
    if (this.stopped) return;
    this.houseTimer = setTimeout(() => {
      this.house = this.keepHouse().finally(() => this.scheduleHouse());
    }, CAP_EVERY_MS);
  }

  private async keepHouse(): Promise<void> {
    try {
      const dropped = await this.outbox.dropOverflow(this.config.webhooks.maxPending);
      if (dropped > 0) {
        this.logger.warn(
          `dropped ${dropped} webhook deliveries beyond ${this.config.webhooks.maxPending} pending per endpoint`,
        );
      }
    } catch (error) {
      this.logger.warn(`capping webhook backlogs failed: ${(error as Error).message}`);
    }
  }
}
