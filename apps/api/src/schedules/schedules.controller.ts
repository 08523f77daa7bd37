import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import { parsePage, requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import {
  SchedulesService,
  mergeScheduleUpdate,
  parseScheduleSpec,
  parseScheduleSpecs,
} from '@kiln/schedules';
import { BodyKind } from '../http/body';
import { IdPipe } from '../http/params';
import { scheduleJson } from './schedule.presenter';

@Controller('2/projects/:projectId/schedules')
export class SchedulesController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly schedules: SchedulesService,
  ) {}

  @Post()
  @BodyKind('bulk')
  @HttpCode(200)
  async create(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const specs = parseScheduleSpecs(requireObject(body, 'body'), this.config.tasks);
    const schedules = await this.schedules.create(projectId, specs);
    return { msg: 'Scheduled', schedules: schedules.map((schedule) => ({ id: schedule.id })) };
  }

  @Get()
  async list(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const { page, perPage } = parsePage(query);
    return { schedules: (await this.schedules.list(projectId, page, perPage)).map(scheduleJson) };
  }

  @Get(':scheduleId')
  async get(
    @Param('projectId', IdPipe) projectId: string,
    @Param('scheduleId', IdPipe) scheduleId: string,
  ) {
    return scheduleJson(await this.schedules.get(projectId, scheduleId));
  }

  @Post(':scheduleId/cancel')
  @HttpCode(200)
  async cancel(
    @Param('projectId', IdPipe) projectId: string,
    @Param('scheduleId', IdPipe) scheduleId: string,
  ) {
    await this.schedules.cancel(projectId, scheduleId);
    return { msg: 'Cancelled' };
  }

  /** Partial update: the fields given replace the schedule's, the rest stay. */
  @Put(':scheduleId')
  @BodyKind('payload')
  async update(
    @Param('projectId', IdPipe) projectId: string,
    @Param('scheduleId', IdPipe) scheduleId: string,
    @Body() body: unknown,
  ) {
    const changes = requireObject(body, 'body');
    const current = await this.schedules.get(projectId, scheduleId);
    await this.schedules.update(
      projectId,
      scheduleId,
      parseScheduleSpec(mergeScheduleUpdate(current, changes), this.config.tasks),
    );
    return { msg: 'Updated' };
  }
}
