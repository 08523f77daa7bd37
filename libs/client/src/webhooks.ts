import { Transport } from './http';
import { compact } from './paging';
import { Message, NewWebhook, Webhook, WebhookChanges, WebhookDelivery } from './types';

/** Endpoints Kiln notifies of task events, with signed, retried deliveries: `kiln.webhooks`. */
export class Webhooks {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Adds an endpoint; the answer holds the signing `secret`.
   * @example await kiln.webhooks.create({ url: 'https://example.com/kiln', events: ['task.error'] });
   */
  async create(webhook: NewWebhook): Promise<Webhook> {
    return this.http.json<Webhook>({
      method: 'POST',
      path: `${this.base}/webhooks`,
      json: webhookBody(webhook),
      idempotent: false,
    });
  }

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

  /** Changes the given fields (`enabled: true` re-enables an endpoint Kiln disabled). */
  async update(id: string, changes: WebhookChanges): Promise<Webhook> {
    return this.http.json<Webhook>({
      method: 'PATCH',
      path: this.path(id),
      json: webhookBody(changes),
      idempotent: true,
    });
  }

  async delete(id: string): Promise<Message> {
    return this.http.json<Message>({ method: 'DELETE', path: this.path(id), idempotent: true });
  }

  /** A new signing secret; the old one stops working. */
  async rotateSecret(id: string): Promise<{ secret: string; msg: string }> {
    return this.http.json<{ secret: string; msg: string }>({
      method: 'POST',
      path: `${this.path(id)}/rotate_secret`,
      idempotent: false,
    });
  }

  /** The endpoint's recent deliveries, newest first. */
  async deliveries(id: string): Promise<WebhookDelivery[]> {
    const { deliveries } = await this.http.json<{ deliveries: WebhookDelivery[] }>({
      method: 'GET',
      path: `${this.path(id)}/deliveries`,
      idempotent: true,
    });
    return deliveries;
  }

  /** Sends a delivery again. */
  async redeliver(id: string, deliveryId: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.path(id)}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`,
      idempotent: false,
    });
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
