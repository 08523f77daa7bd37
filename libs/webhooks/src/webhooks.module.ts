import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CodesModule } from '@kiln/codes';
import { MetricsModule } from '@kiln/metrics';
import { ProjectsModule } from '@kiln/projects';
import { TasksModule } from '@kiln/tasks';
import { CodeTrigger } from './code-trigger.entity';
import { LogDrain } from './drains/log-drain.entity';
import { LogDrainShipper } from './drains/log-drain-shipper';
import { LogDrainStore } from './drains/log-drain-store';
import { LogDrainsService } from './drains/log-drains.service';
import { SyslogSender } from './drains/syslog-sender';
import { TriggersService } from './triggers.service';
import { Webhook } from './webhook.entity';
import { WebhookBacklog } from './webhook-backlog';
import { WebhookOutbox } from './webhook-outbox';
import { WebhookSender } from './webhook-sender';
import { WebhooksService } from './webhooks.service';

/**
 * Webhooks both ways: subscriptions and their delivery log (API), the outbox and the HTTP sender
 * (used by {@link WebhookDispatcher}, which the scheduler registers), per-code triggers, and log
 * drains (their API, and the shipper the scheduler's leader runs).
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([Webhook, CodeTrigger, LogDrain]),
    CodesModule,
    TasksModule,
    ProjectsModule,
    MetricsModule,
  ],
  providers: [
    WebhooksService,
    WebhookOutbox,
    WebhookSender,
    TriggersService,
    WebhookBacklog,
    LogDrainsService,
    LogDrainStore,
    LogDrainShipper,
    SyslogSender,
  ],
  exports: [
    WebhooksService,
    WebhookOutbox,
    WebhookSender,
    TriggersService,
    WebhookBacklog,
    LogDrainsService,
    LogDrainShipper,
  ],
})
export class WebhooksModule {}
