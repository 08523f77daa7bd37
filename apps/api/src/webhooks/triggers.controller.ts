import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
} from '@nestjs/common';
import type { Request } from 'express';
import { requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TriggersService, parseTriggerSpec } from '@kiln/webhooks';
import { Public } from '../auth/guards';
import { BodyKind } from '../http/body';
import { IdPipe } from '../http/params';
import { triggerJson, triggerUrl } from './webhook.presenter';

function baseUrl(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}`;
}

/** Making, listing and revoking a code's trigger URLs (needs the project's token). */
@Controller('2/projects/:projectId/codes/:codeId/triggers')
export class CodeTriggersController {
  constructor(private readonly triggers: TriggersService) {}

  /** The secret, and the full URL holding it, are shown here only. */
  @Post()
  @HttpCode(200)
  async create(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Body() body: unknown,
    @Req() req: Request,
  ) {
    const { trigger, code, secret } = await this.triggers.create(
      projectId,
      codeId,
      parseTriggerSpec(requireObject(body, 'body')),
    );
    return {
      ...triggerJson(trigger, code.name, baseUrl(req)),
      url: `${triggerUrl(baseUrl(req), trigger)}?secret=${secret}`,
      secret,
    };
  }

  @Get()
  async list(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Req() req: Request,
  ) {
    const { code, triggers } = await this.triggers.list(projectId, codeId);
    return { triggers: triggers.map((trigger) => triggerJson(trigger, code.name, baseUrl(req))) };
  }

  @Delete(':triggerId')
  async revoke(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Param('triggerId', IdPipe) triggerId: string,
  ) {
    await this.triggers.revoke(projectId, codeId, triggerId);
    return { msg: 'Revoked' };
  }
}

/**
 * The trigger URL itself: no project token, the trigger's secret (`?secret=` or
 * `X-Kiln-Trigger-Secret`) and optional HMAC authenticate; the raw body (any Content-Type,
 * ≤ KILN_PAYLOAD_MAX_BYTES) is the payload of a task of the trigger's code.
 */
@Controller('2/projects/:projectId/triggers')
@Public()
export class IncomingTriggersController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly triggers: TriggersService,
  ) {}

  @Post(':triggerId')
  @BodyKind('raw')
  @HttpCode(200)
  async fire(
    @Param('projectId', IdPipe) projectId: string,
    @Param('triggerId', IdPipe) triggerId: string,
    @Query('secret') secretParam: unknown,
    @Req() req: Request,
  ) {
    const header = req.get('x-kiln-trigger-secret');
    const secret = typeof secretParam === 'string' && secretParam !== '' ? secretParam : header;
    const body: unknown = req.body;
    const id = await this.triggers.fire(
      projectId,
      triggerId,
      {
        secret,
        header: (name) => req.get(name),
        body: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
      },
      this.config.tasks,
    );
    return { id, msg: 'Queued up.' };
  }
}
