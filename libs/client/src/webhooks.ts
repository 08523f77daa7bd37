import { Transport } from './http';
import { compact, paged } from './paging';
import {
  CreatedWebhook,
  DeliveryFilter,
  Message,
  NewWebhook,
  RotatedSecret,
  Webhook,
  WebhookChanges,
  WebhookDelivery,
} from './types';

/**
 * Endpoints Kiln tells about task and schedule events, with signed (Standard Webhooks), retried
 * deliveries and a delivery log: `kiln.webhooks`. Check a request's signature with
 * `verifyWebhook`.
 */
export class Webhooks {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Subscribes an endpoint. The answer holds the signing `secret` (`whsec_…`), shown this once.
   * @example const { id, secret } = await kiln.webhooks.create({ url: 'https://example.com/kiln', events: ['task.error'] });
   */
  async create(webhook: NewWebhook): Promise<CreatedWebhook> {
    return this.http.json<CreatedWebhook>({
      method: 'POST',
      path: `${this.base}/webhooks`,
      json: webhookBody(webhook),
      idempotent: false,
    });
  }

  /** Every subscription of the project, oldest first (no secrets). */
  async list(): Promise<Webhook[]> {
    const { webhooks } = await this.http.json<{ webhooks: Webhook[] }>({
      method: 'GET',
      path: `${this.base}/webhooks`,
      idempotent: true,
    });
    return webhooks;
  }

  async get(id: string): Promise<Webhook> {
    return this.http.json<Webhook>({ method: 'GET', path: this.path(id), idempotent: true });
  }

  /** Changes the given fields (`enabled: true` re-enables an endpoint Kiln disabled after a 410). */
  async update(id: string, changes: WebhookChanges): Promise<Webhook> {
    return this.http.json<Webhook>({
      method: 'PATCH',
      path: this.path(id),
      json: webhookBody(changes),
      idempotent: true,
    });
  }

  /** Deletes the subscription and its delivery log. */
  async delete(id: string): Promise<Message> {
    return this.http.json<Message>({ method: 'DELETE', path: this.path(id), idempotent: true });
  }

  /**
   * A new signing secret. Deliveries carry two signatures, new and old, for
   * KILN_WEBHOOK_SECRET_OVERLAP_HOURS (default 24), so the receiver can switch without missing one.
   */
  async rotateSecret(id: string): Promise<RotatedSecret> {
    return this.http.json<RotatedSecret>({
      method: 'POST',
      path: `${this.path(id)}/rotate_secret`,
      idempotent: false,
    });
  }

  /**
   * The endpoint's delivery log, newest first, fetched a page at a time as you iterate.
   * @example for await (const d of kiln.webhooks.deliveries(id)) if (d.state === 'failed') console.log(d.error);
   */
  async *deliveries(id: string, filter: DeliveryFilter = {}): AsyncGenerator<WebhookDelivery> {
    const perPage = Math.min(100, Math.max(1, filter.perPage ?? 100));
    yield* paged(async (page) => {
      const { deliveries } = await this.http.json<{ deliveries: WebhookDelivery[] }>({
        method: 'GET',
        path: `${this.path(id)}/deliveries`,
        query: { page, per_page: perPage },
        idempotent: true,
      });
      return deliveries;
    }, perPage);
  }

  /** Sends a delivery again: the same `webhook-id` and body, with a fresh retry schedule. */
  async redeliver(id: string, deliveryId: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.path(id)}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`,
      idempotent: false,
    });
  }

  /**
   * The project's secret (`whsec_…`) signing the calls to tasks' own `webhook` URLs (made on
   * first use; the same for every task of the project).
   */
  async taskSecret(): Promise<string> {
    const { secret } = await this.http.json<{ secret: string }>({
      method: 'GET',
      path: `${this.base}/webhooks/task_secret`,
      idempotent: true,
    });
    return secret;
  }

  private path(id: string): string {
    return `${this.base}/webhooks/${encodeURIComponent(id)}`;
  }
}

function webhookBody(webhook: WebhookChanges): Record<string, unknown> {
  return compact({
    url: webhook.url,
    events: webhook.events,
    code_name: webhook.codeName,
    enabled: webhook.enabled,
    description: webhook.description,
  });
}
