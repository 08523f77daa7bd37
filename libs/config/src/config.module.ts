import { Global, Module } from '@nestjs/common';
import { loadConfig, KilnConfig } from './config';

/** Injection token of the validated {@link KilnConfig}. */
export const KILN_CONFIG = Symbol('KILN_CONFIG');

@Global()
@Module({
  providers: [{ provide: KILN_CONFIG, useFactory: (): KilnConfig => loadConfig() }],
  exports: [KILN_CONFIG],
})
export class ConfigModule {}
