import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CodesModule } from '@kiln/codes';
import { MetricsModule } from '@kiln/metrics';
import { ProjectsModule } from '@kiln/projects';
import { TasksModule } from '@kiln/tasks';
import { CodeTrigger } from './code-trigger.entity';
import { TriggersService } from './triggers.service';
import { Webhook } from './webhook.entity';
import { WebhookBacklog } from './webhook-backlog';
import { WebhookOutbox } from './webhook-outbox';
import { WebhookSender } from './webhook-sender';
import { WebhooksService } from './webhooks.service';

/**
 * Webhooks both ways: subscriptions and their delivery log (API), the outbox and the HTTP sender
 * (used by {@link WebhookDispatcher}, which the scheduler registers), and per-code triggers.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Webhook, CodeTrigger]),
    CodesModule,
    TasksModule,
    ProjectsModule,
    MetricsModule,
  ],
  providers: [WebhooksService, WebhookOutbox, WebhookSender, TriggersService, WebhookBacklog],
  exports: [WebhooksService, WebhookOutbox, WebhookSender, TriggersService, WebhookBacklog],
})
export class WebhooksModule {}
