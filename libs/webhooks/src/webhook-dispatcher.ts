import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { Client } from 'pg';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { retryDelaySeconds } from './backoff';
import { signedHeaders } from './signing';
import { AttemptOutcome, ClaimedDelivery, WEBHOOK_CHANNEL, WebhookOutbox } from './webhook-outbox';
import { SendResult, WebhookSender } from './webhook-sender';

/** Poll for due deliveries (retries coming due, missed notifications) at least this often. */
const POLL_MS = 1000;
const PRUNE_EVERY_MS = 3600_000;
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
): AttemptOutcome & { gone: boolean } {
  const base = { statusCode: result.statusCode, durationMs: result.durationMs };
  const code = result.statusCode;
  if (code !== null && code >= 200 && code < 300) {
    return { ...base, state: 'delivered', error: null, gone: false };
  }
  if (code === 410) {
    return { ...base, state: 'failed', error: 'Endpoint answered 410 Gone: disabled', gone: true };
  }
  const error =
    result.error ??
    (code !== null && code >= 300 && code < 400
      ? `Redirect (${code}) not followed`
      : `Endpoint answered ${code}`);
  const retryIn = retryDelaySeconds(failures + 1, schedule);
  return retryIn === null
    ? { ...base, state: 'failed', error, gone: false }
    : { ...base, state: 'pending', error, retryInSeconds: retryIn, gone: false };
}

/**
 * Delivers webhooks from the outbox, `KILN_WEBHOOK_CONCURRENCY` at a time. It wakes on
 * Postgres NOTIFY from the triggers that fill the outbox, when a slot frees, and every second.
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
  private lastPrune = 0;
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
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.webhooks.concurrency === 0) return;
    await this.listen();
    this.loop = this.run();
    this.logger.log(`delivering webhooks, ${this.config.webhooks.concurrency} at a time`);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
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

  /** LISTENs for the triggers' notifications; a lost connection is retried, polling meanwhile. */
  private async listen(): Promise<void> {
    if (this.stopped) return;
    const client = new Client({ connectionString: this.config.databaseUrl });
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
    const { concurrency, timeoutMs } = this.config.webhooks;
    const leaseSeconds = Math.ceil(timeoutMs / 1000) + LEASE_MARGIN_SECONDS;
    while (!this.stopped) {
      this.woken = false;
      const free = concurrency - this.inFlight.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const batch = await this.outbox.claim(free, leaseSeconds);
          claimed = batch.length;
          for (const delivery of batch) this.track(this.deliver(delivery));
        } catch (error) {
          this.logger.warn(`claiming deliveries failed: ${(error as Error).message}`);
        }
      }
      await this.prune();
      // Until a notification, a free slot (a full batch may have left more behind) or the poll.
      if (claimed < free || this.inFlight.size >= concurrency) await this.sleep(POLL_MS);
    }
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => {
      this.inFlight.delete(work);
      this.wake();
    });
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    try {
      const outcome = await this.attempt(delivery);
      const recorded = await this.record(delivery, outcome);
      if (recorded && outcome.gone && delivery.webhookId) {
        await this.outbox.disable(delivery.webhookId, 'Endpoint answered 410 Gone');
        this.logger.warn(`webhook ${delivery.webhookId} answered 410: disabled`);
      }
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
    while (this.outcomes.length > 0) {
      const batch = this.outcomes.splice(0, 500);
      try {
        const recorded = await this.outbox.record(batch);
        for (const item of batch) item.done(recorded.has(item.delivery.id));
      } catch (error) {
        for (const item of batch) item.failed(error);
      }
    }
    this.flushing = false;
  }

  private async attempt(delivery: ClaimedDelivery): Promise<AttemptOutcome & { gone: boolean }> {
    if (!delivery.endpointEnabled) {
      return {
        state: 'failed',
        statusCode: null,
        error: 'Endpoint disabled',
        durationMs: 0,
        gone: false,
      };
    }
    const secrets =
      delivery.secrets.length > 0
        ? delivery.secrets
        : [await this.outbox.projectSecret(delivery.projectId)];
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'Kiln-Webhooks/1',
      ...signedHeaders(secrets, delivery.messageId, Math.floor(Date.now() / 1000), delivery.body),
    };
    let url: URL;
    try {
      url = new URL(delivery.url);
    } catch {
      return {
        state: 'failed',
        statusCode: null,
        error: 'Invalid URL',
        durationMs: 0,
        gone: false,
      };
    }
    const result = await this.sender.post(url, headers, delivery.body);
    return outcomeOf(result, delivery.failures, this.config.webhooks.retrySchedule);
  }

  private async prune(): Promise<void> {
    if (Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    try {
      const pruned = await this.outbox.prune(this.config.webhooks.retentionDays);
      if (pruned > 0) this.logger.log(`pruned ${pruned} finished webhook deliveries`);
    } catch (error) {
      this.logger.warn(`pruning deliveries failed: ${(error as Error).message}`);
    }
  }
}
