import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { ProjectsModule } from '@kiln/projects';
import { RateLimits } from '@kiln/redis';
import { BodyReader } from '../http/body.interceptor';
import { AdminGuard, ProjectGuard } from './guards';
import { TokenRevocations } from './token-revocations';
import { TokenStrategy } from './token.strategy';
import { UiSessions } from './ui-sessions';

@Module({
  imports: [PassportModule, ProjectsModule],
  providers: [
    TokenStrategy,
    ProjectGuard,
    AdminGuard,
    TokenRevocations,
    UiSessions,
    BodyReader,
    RateLimits,
    { provide: APP_GUARD, useExisting: ProjectGuard },
  ],
  exports: [
    ProjectGuard,
    AdminGuard,
    TokenStrategy,
    UiSessions,
    TokenRevocations,
    BodyReader,
    RateLimits,
    ProjectsModule,
  ],
})
export class AuthModule {}
