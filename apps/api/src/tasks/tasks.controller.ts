import {
  Body,
  Controller,
  Get,
  Header,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import { KilnException, requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { TASK_STATUSES, TaskLogStore, TasksService, parseTaskSpecs } from '@kiln/tasks';
import { ProjectGuard } from '../auth/guards';
import { IdPipe, parsePage, queryInt } from '../http/params';
import { taskJson } from './task.presenter';

@Controller('2/projects/:projectId/tasks')
@UseGuards(ProjectGuard)
export class TasksController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly tasks: TasksService,
    private readonly logs: TaskLogStore,
  ) {}

  @Post()
  @HttpCode(200)
  async create(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const specs = parseTaskSpecs(requireObject(body, 'body'), this.config.tasks);
    const tasks = await this.tasks.create(projectId, specs);
    return { msg: 'Queued up', tasks: tasks.map((task) => ({ id: task.id })) };
  }

  /** Newest first; `<status>=1` flags are OR-ed (any non-empty value counts: Go sends `%!d(bool=true)`). */
  @Get()
  async list(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const statuses = TASK_STATUSES.filter((status) => isFlagSet(query[status]));
    const fromTime = queryInt(query, 'from_time', -1, 0, Number.MAX_SAFE_INTEGER);
    const toTime = queryInt(query, 'to_time', -1, 0, Number.MAX_SAFE_INTEGER);
    const tasks = await this.tasks.list(projectId, {
      ...parsePage(query),
      statuses,
      codeName: stringParam(query, 'code_name'),
      label: stringParam(query, 'label'),
      cluster: stringParam(query, 'cluster'),
      fromTime: fromTime >= 0 ? new Date(fromTime * 1000) : undefined,
      toTime: toTime >= 0 ? new Date(toTime * 1000) : undefined,
    });
    return { tasks: tasks.map(taskJson) };
  }

  @Get(':taskId')
  async get(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
  ) {
    return taskJson(await this.tasks.get(projectId, taskId));
  }

  /**
   * The combined STDOUT+STDERR log as text. 404 (with "log" in `msg`, which IronWorker's clients
   * retry on) until the task has started; the partial log while it runs.
   */
  @Get(':taskId/log')
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async log(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
  ) {
    const task = await this.tasks.get(projectId, taskId);
    const log = await this.logs.read(task.id);
    if (log === '' && (task.status === 'queued' || task.status === 'preparing')) {
      throw KilnException.notFound('Log not found: the task has not started yet');
    }
    return log;
  }
}

function isFlagSet(value: unknown): boolean {
  return typeof value === 'string'
    ? value !== '' && value !== '0' && value !== 'false'
    : value !== undefined;
}

function stringParam(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
