import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  Req,
  UseGuards,
} from '@nestjs/common';
import type { Request } from 'express';
import { FieldReader, KilnException, formatTime, requireObject } from '@kiln/common';
import { MAX_RETENTION_DAYS } from '@kiln/config';
import {
  Project,
  ProjectSettings,
  ProjectsService,
  Token,
  TokensService,
  parseTokenSpec,
} from '@kiln/projects';
import { AdminGuard } from '../auth/guards';
import { Principal } from '../auth/principal';
import { Role } from '../auth/roles';
import { TokenRevocations } from '../auth/token-revocations';
import { IdPipe } from '../http/params';

function projectJson(project: Project) {
  return {
    id: project.id,
    name: project.name,
    max_running: project.maxRunning,
    retention_days: project.retentionDays,
    created_at: formatTime(project.createdAt),
    updated_at: formatTime(project.updatedAt),
  };
}

/** A token as listed: never its secret (only its hash is stored anyway). Unset times are null. */
function tokenJson(token: Token) {
  return {
    id: token.id,
    name: token.name,
    role: token.role,
    created_at: formatTime(token.createdAt),
    last_used_at: token.lastUsedAt ? formatTime(token.lastUsedAt) : null,
    expires_at: token.expiresAt ? formatTime(token.expiresAt) : null,
  };
}

@Controller('2/projects')
export class ProjectsController {
  constructor(
    private readonly projects: ProjectsService,
    private readonly tokens: TokensService,
    private readonly revocations: TokenRevocations,
  ) {}

  @Post()
  @HttpCode(200)
  @UseGuards(AdminGuard)
  async create(@Body() body: unknown) {
    const name = new FieldReader(requireObject(body, 'body')).requiredString('name', 255);
    const project = await this.projects.create(name);
    return { msg: 'Project Created', id: project.id, project: projectJson(project) };
  }

  @Get()
  async list(@Req() req: Request & { user: Principal }) {
    const projects = await this.projects.visibleTo(req.user);
    return { projects: projects.map(projectJson) };
  }

  /** ironcli and the Ruby CLI call this before every command. */
  @Get(':projectId')
  async get(@Param('projectId', IdPipe) projectId: string) {
    return projectJson(await this.projects.get(projectId));
  }

  /**
   * The operator's settings of a project, each optional but at least one: `max_running`, how
   * many of its tasks may run at once in a cluster (1-1000000; 0 or null: the operator's default,
   * `KILN_PROJECT_MAX_RUNNING`); `retention_days`, how long its finished tasks are kept with their
   * logs and deliveries (1-3650; null: `KILN_TASK_RETENTION_DAYS`). Both are checked before
   * either is written.
   */
  @Patch(':projectId')
  @UseGuards(AdminGuard)
  async update(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const source = requireObject(body, 'body');
    const fields = new FieldReader(source);
    const settings: ProjectSettings = {};
    if ('max_running' in source) {
      settings.maxRunning = fields.int('max_running', { min: 0, max: 1_000_000 }) || null;
    }
    if ('retention_days' in source) {
      settings.retentionDays =
        fields.int('retention_days', { min: 1, max: MAX_RETENTION_DAYS }) ?? null;
    }
    if (Object.keys(settings).length === 0) {
      throw KilnException.badRequest('max_running or retention_days is required');
    }
    const project = await this.projects.updateSettings(projectId, settings);
    return { msg: 'Project updated', project: projectJson(project) };
  }

  /** The project's live tokens (expired ones included), never their secrets. */
  @Get(':projectId/tokens')
  @Role('manage')
  async listTokens(@Param('projectId', IdPipe) projectId: string) {
    const tokens = await this.tokens.list(projectId);
    return { tokens: tokens.map(tokenJson) };
  }

  /** Issues a token for the project (the admin, or a `manage` token); the secret is in this answer only. */
  @Post(':projectId/tokens')
  @HttpCode(200)
  async issueToken(
    @Param('projectId', IdPipe) projectId: string,
    @Body() body: unknown,
    @Req() req: Request & { user: Principal },
  ) {
    const spec = parseTokenSpec(body);
    // A token cannot outlive the token that made it: an expiring or leaked token would mint a
    // permanent one. The admin's have no such bound.
    const caller = req.user;
    if (!caller.admin && caller.expiresAt) {
      const bound = caller.expiresAt;
      if (!spec.expiresAt || spec.expiresAt > bound) {
        throw KilnException.badRequest(
          `expires_at must be at most ${bound.toISOString()}, when the token making it expires`,
        );
      }
    }
    const { token, secret } = await this.tokens.issue(projectId, spec);
    return { msg: 'Token created', project_id: projectId, token: secret, ...tokenJson(token) };
  }

  /** Revokes a token: it answers 401 on every replica from then on (within a second). */
  @Delete(':projectId/tokens/:tokenId')
  async revokeToken(
    @Param('projectId', IdPipe) projectId: string,
    @Param('tokenId', IdPipe) tokenId: string,
  ) {
    await this.revocations.revoke(projectId, tokenId);
    return { msg: 'Revoked' };
  }
}
