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
} from '@nestjs/common';
import { requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { LogDrainsService, parseLogDrainSpec } from '@kiln/webhooks';
import { IdPipe } from '../http/params';
import { logDrainJson } from './log-drain.presenter';

/** A project's log drains (Kiln's extension; IronWorker's "stream to syslog or a third party"). */
@Controller('2/projects/:projectId/log_drains')
export class LogDrainsController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly drains: LogDrainsService,
  ) {}

  @Post()
  @HttpCode(200)
  async create(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const spec = parseLogDrainSpec(
      requireObject(body, 'body'),
      this.config.webhooks.allowedHosts,
      false,
    );
    return logDrainJson(await this.drains.create(projectId, spec), true);
  }

  @Get()
  async list(@Param('projectId', IdPipe) projectId: string) {
    return { log_drains: (await this.drains.list(projectId)).map((d) => logDrainJson(d)) };
  }

  @Get(':drainId')
  async get(
    @Param('projectId', IdPipe) projectId: string,
    @Param('drainId', IdPipe) drainId: string,
  ) {
    return logDrainJson(await this.drains.get(projectId, drainId));
  }

  @Patch(':drainId')
  async update(
    @Param('projectId', IdPipe) projectId: string,
    @Param('drainId', IdPipe) drainId: string,
    @Body() body: unknown,
  ) {
    const spec = parseLogDrainSpec(
      requireObject(body, 'body'),
      this.config.webhooks.allowedHosts,
      true,
    );
    return logDrainJson(await this.drains.update(projectId, drainId, spec));
  }

  @Delete(':drainId')
  async delete(
    @Param('projectId', IdPipe) projectId: string,
    @Param('drainId', IdPipe) drainId: string,
  ) {
    await this.drains.delete(projectId, drainId);
    return { msg: 'Deleted' };
  }
}
