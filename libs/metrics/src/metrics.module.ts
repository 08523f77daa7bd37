import { Global, Module } from '@nestjs/common';
import { KilnMetrics } from './metrics';

/** The process's one {@link KilnMetrics}: global, so that any module may count. */
@Global()
@Module({ providers: [KilnMetrics], exports: [KilnMetrics] })
export class MetricsModule {}
