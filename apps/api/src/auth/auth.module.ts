import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { ProjectsModule } from '@kiln/projects';
import { AdminGuard, ProjectGuard } from './guards';
import { TokenRevocations } from './token-revocations';
import { TokenStrategy } from './token.strategy';

@Module({
  imports: [PassportModule, ProjectsModule],
  providers: [
    TokenStrategy,
    ProjectGuard,
    AdminGuard,
    TokenRevocations,
    { provide: APP_GUARD, useExisting: ProjectGuard },
  ],
  exports: [ProjectGuard, AdminGuard, TokenRevocations, ProjectsModule],
})
export class AuthModule {}
