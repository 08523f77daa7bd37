import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnException, newId, SecretBox, sealedContext } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { ProjectLimits, checkQuota } from '@kiln/projects';
import { DeliveryRecord, EndpointState, WebhookOutbox } from './webhook-outbox';
import { Webhook } from './webhook.entity';
import { WebhookEvent, WebhookSpec } from './webhook-spec';
import { newWebhookSecret } from './signing';

/** A subscription with its endpoint's circuit and backlog. */
export interface WebhookView {
  webhook: Webhook;
  endpoint: EndpointState;
}

/** A project's webhook subscriptions, their secrets and their delivery logs. */
@Injectable()
export class WebhooksService {
  private readonly box: SecretBox;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    @InjectRepository(Webhook) private readonly webhooks: Repository<Webhook>,
    private readonly outbox: WebhookOutbox,
    private readonly limits: ProjectLimits,
  ) {
    this.box = SecretBox.from(config);
  }

  /**
   * A new subscription, within the project's quota of subscriptions (429 past it). The entity
   * returned holds the secret in plain text, to be shown this once; the row holds it sealed.
   */
  async create(projectId: string, spec: WebhookSpec): Promise<Webhook> {
    const held = await this.webhooks.countBy({ projectId });
    checkQuota('webhooks', await this.limits.quota(projectId, 'webhooks'), held);
    const now = new Date();
    const id = newId(now);
    const secret = newWebhookSecret();
    const webhook = this.webhooks.create({
      id,
      projectId,
      url: spec.url!,
      events: spec.events as WebhookEvent[],
      codeName: spec.codeName ?? null,
      enabled: spec.enabled ?? true,
      disabledReason: null,
      description: spec.description ?? '',
      secret: this.box.store(secret, sealedContext.webhookSecret(projectId, id)),
      previousSecret: null,
      previousSecretUntil: null,
      createdAt: now,
      updatedAt: now,
    });
    const saved = await this.webhooks.save(webhook);
    return Object.assign(saved, { secret });
  }

  async list(projectId: string): Promise<Webhook[]> {
    return this.webhooks.find({ where: { projectId }, order: { createdAt: 'ASC', id: 'ASC' } });
  }

  async get(projectId: string, id: string): Promise<Webhook> {
    const webhook = await this.webhooks.findOneBy({ projectId, id });
    if (!webhook) throw KilnException.notFound('Webhook not found');
    return webhook;
  }

  /** Subscriptions as shown: each with its circuit, pending and dropped deliveries. */
  async views(webhooks: Webhook[]): Promise<WebhookView[]> {
    const states = await this.outbox.endpointStates(webhooks.map((webhook) => webhook.id));
    return webhooks.map((webhook) => ({ webhook, endpoint: states.get(webhook.id)! }));
  }

  async listViews(projectId: string): Promise<WebhookView[]> {
    return this.views(await this.list(projectId));
  }

  async getView(projectId: string, id: string): Promise<WebhookView> {
    const [view] = await this.views([await this.get(projectId, id)]);
    return view;
  }

  /**
   * Applies the fields given; enabling clears the reason Kiln disabled it for. Enabling it or
   * changing its URL closes its circuit: the endpoint gets a fresh chance.
   */
  async update(projectId: string, id: string, spec: WebhookSpec): Promise<WebhookView> {
    const webhook = await this.get(projectId, id);
    const fresh =
      (spec.url !== undefined && spec.url !== webhook.url) ||
      (spec.enabled === true && !webhook.enabled);
    if (spec.url !== undefined) webhook.url = spec.url;
    if (spec.events !== undefined) webhook.events = spec.events;
    if (spec.codeName !== undefined) webhook.codeName = spec.codeName;
    if (spec.description !== undefined) webhook.description = spec.description;
    if (spec.enabled !== undefined) {
      webhook.enabled = spec.enabled;
      webhook.disabledReason = null;
    }
    webhook.updatedAt = new Date();
    await this.webhooks.save(webhook);
    if (fresh) await this.outbox.resetCircuit(id);
    const [view] = await this.views([webhook]);
    return view;
  }

  async delete(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    await this.webhooks.delete({ projectId, id });
  }

  /**
   * A new secret; the old one keeps signing too (both signatures are sent) for
   * `KILN_WEBHOOK_SECRET_OVERLAP_HOURS`, so receivers can switch without missing a message.
   */
  async rotateSecret(projectId: string, id: string): Promise<string> {
    const webhook = await this.get(projectId, id);
    const now = Date.now();
    const previous = this.box.read(webhook.secret, sealedContext.webhookSecret(projectId, id));
    const secret = newWebhookSecret();
    webhook.previousSecret = this.box.store(
      previous,
      sealedContext.webhookPreviousSecret(projectId, id),
    );
    webhook.previousSecretUntil = new Date(
      now + this.config.webhooks.secretOverlapHours * 3600_000,
    );
    webhook.secret = this.box.store(secret, sealedContext.webhookSecret(projectId, id));
    webhook.updatedAt = new Date(now);
    await this.webhooks.save(webhook);
    return secret;
  }

  async deliveries(
    projectId: string,
    id: string,
    page: number,
    perPage: number,
  ): Promise<DeliveryRecord[]> {
    await this.get(projectId, id);
    return this.outbox.list(id, page, perPage);
  }

  async redeliver(projectId: string, id: string, deliveryId: string): Promise<void> {
    await this.get(projectId, id);
    if (!(await this.outbox.redeliver(id, deliveryId))) {
      throw KilnException.notFound('Delivery not found');
    }
  }

  /** The secret signing the project's per-task `webhook` calls (made on first use). */
  async taskWebhookSecret(projectId: string): Promise<string> {
    return this.outbox.projectSecret(projectId);
  }
}
