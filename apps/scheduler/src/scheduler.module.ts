import { TracingShutdown } from '@kiln/common';
import { Module } from '@nestjs/common';
import { ConfigModule } from '@kiln/config';
import { DatabaseModule } from '@kiln/database';
import { HealthModule, healthServerProviders } from '@kiln/health';
import { KilnMetrics, MetricsModule } from '@kiln/metrics';
import { QueueModule } from '@kiln/queue';
import { RedisModule } from '@kiln/redis';
import { SchedulesModule } from '@kiln/schedules';
import { TasksModule } from '@kiln/tasks';
import { WebhookDispatcher, WebhooksModule } from '@kiln/webhooks';
import { DatabaseContact } from './database-contact';
import { LeaderLease } from './leader-lease';
import { LeaderLoop } from './leader-loop';
import { LogDrainLoop } from './log-drain-loop';
import { Reconciler } from './reconciler';
import { RetentionPurger } from './retention-purger';
import { ScheduleFirer } from './schedule-firer';
import { SchedulerGauges } from './scheduler-gauges';

@Module({
  imports: [
    ConfigModule,
    MetricsModule,
    DatabaseModule.forRoot(),
    QueueModule,
    RedisModule,
    TasksModule,
    SchedulesModule,
    WebhooksModule,
    HealthModule.register({ withDocker: false }),
  ],
  // The webhook dispatcher runs in every replica, leader or not: deliveries are leased rows.
  providers: [
    TracingShutdown,
    DatabaseContact,
    LeaderLease,
    ScheduleFirer,
    Reconciler,
    LeaderLoop,
    LogDrainLoop,
    RetentionPurger,
    WebhookDispatcher,
    SchedulerGauges,
    ...healthServerProviders((config) => ({
      name: 'scheduler',
      host: config.api.host,
      port: config.scheduler.healthPort,
      details: { scheduler: config.scheduler.id },
    })),
  ],
})
export class SchedulerModule {
  constructor(metrics: KilnMetrics) {
    metrics.register('scheduler');
  }
}
