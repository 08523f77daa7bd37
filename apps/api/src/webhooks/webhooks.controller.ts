import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Patch,
  Post,
  Query,
} from '@nestjs/common';
import { parsePage, requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { WebhooksService, parseWebhookSpec } from '@kiln/webhooks';
import { IdPipe } from '../http/params';
import { deliveryJson, newWebhookJson, webhookJson } from './webhook.presenter';
import { Role } from '../auth/roles';

/** Project webhook subscriptions (Kiln's extension; Standard Webhooks signing). */
@Controller('2/projects/:projectId/webhooks')
export class WebhooksController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly webhooks: WebhooksService,
  ) {}

  @Post()
  @HttpCode(200)
  async create(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const spec = parseWebhookSpec(
      requireObject(body, 'body'),
      this.config.webhooks.allowedHosts,
      false,
    );
    return newWebhookJson(await this.webhooks.create(projectId, spec));
  }

  @Get()
  async list(@Param('projectId', IdPipe) projectId: string) {
    return { webhooks: (await this.webhooks.listViews(projectId)).map((w) => webhookJson(w)) };
  }

  /** The secret signing per-task `webhook` calls (one per project, made on first use). */
  @Get('task_secret')
  @Role('manage')
  async taskSecret(@Param('projectId', IdPipe) projectId: string) {
    return { secret: await this.webhooks.taskWebhookSecret(projectId) };
  }

  @Get(':webhookId')
  async get(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
  ) {
    return webhookJson(await this.webhooks.getView(projectId, webhookId));
  }

  @Patch(':webhookId')
  async update(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
    @Body() body: unknown,
  ) {
    const spec = parseWebhookSpec(
      requireObject(body, 'body'),
      this.config.webhooks.allowedHosts,
      true,
    );
    return webhookJson(await this.webhooks.update(projectId, webhookId, spec));
  }

  @Delete(':webhookId')
  async delete(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
  ) {
    await this.webhooks.delete(projectId, webhookId);
    return { msg: 'Deleted' };
  }

  @Post(':webhookId/rotate_secret')
  @HttpCode(200)
  async rotateSecret(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
  ) {
    return {
      secret: await this.webhooks.rotateSecret(projectId, webhookId),
      msg: 'Secret rotated.',
    };
  }

  /** Newest first. */
  @Get(':webhookId/deliveries')
  async deliveries(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const { page, perPage } = parsePage(query);
    const deliveries = await this.webhooks.deliveries(projectId, webhookId, page, perPage);
    return { deliveries: deliveries.map(deliveryJson) };
  }

  @Post(':webhookId/deliveries/:deliveryId/redeliver')
  @HttpCode(200)
  async redeliver(
    @Param('projectId', IdPipe) projectId: string,
    @Param('webhookId', IdPipe) webhookId: string,
    @Param('deliveryId', IdPipe) deliveryId: string,
  ) {
    await this.webhooks.redeliver(projectId, webhookId, deliveryId);
    return { msg: 'Redelivery queued.' };
  }
}
