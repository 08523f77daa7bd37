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
  Req,
  Res,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { FieldReader, JsonObject, isFlagSet, parsePage, requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { WebhookOutbox } from '@kiln/webhooks';
import {
  MAX_DELAY_SECONDS,
  TaskLimits,
  TaskLogStore,
  TasksService,
  formatCursor,
  parseBulkTarget,
  parseTaskSpec,
  parseTaskListQuery,
  parseTaskSpecs,
  taskLimitsOf,
} from '@kiln/tasks';
import { BodyKind } from '../http/body';
import { IdPipe } from '../http/params';
import { ApiDrain } from '../http/api-drain';
import { FollowerSlots } from './held-slots';
import { LogFollower, parsePosition } from './log-follower';
import { streamLog } from './log-stream';
import { taskJson, taskSummaryJson } from './task.presenter';
import { deliveryJson } from '../webhooks/webhook.presenter';
import { Role } from '../auth/roles';

/** Idle time before TCP keep-alive probes check that a follower's client is still there. */
const FOLLOWER_KEEPALIVE_MS = 60_000;

@Controller('2/projects/:projectId/tasks')
export class TasksController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly tasks: TasksService,
    private readonly logs: TaskLogStore,
    private readonly follower: LogFollower,
    private readonly followerSlots: FollowerSlots,
    private readonly drain: ApiDrain,
    private readonly outbox: WebhookOutbox,
  ) {}

  @Post()
  @BodyKind('bulk')
  @Role('queue')
  @HttpCode(200)
  async create(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const specs = parseTaskSpecs(requireObject(body, 'body'), this.limits());
    const ids = await this.tasks.create(projectId, specs);
    return { msg: 'Queued up', tasks: ids.map((id) => ({ id })) };
  }

  private limits(): TaskLimits {
    return taskLimitsOf(this.config);
  }

  /**
   * IronWorker's webhook: the raw body (any Content-Type) becomes the payload of a task of
   * `?code_name=`; `priority`, `cluster`, `timeout`, `delay`, `label` may come as query parameters.
   */
  @Post('webhook')
  @BodyKind('raw')
  @Role('queue')
  @HttpCode(200)
  async webhook(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
    @Req() req: Request,
  ) {
    const body: unknown = req.body;
    const payload = Buffer.isBuffer(body) ? body.toString('utf8') : '';
    const numeric = (name: string): number | undefined =>
      typeof query[name] === 'string' && query[name] !== '' ? Number(query[name]) : undefined;
    const spec = parseTaskSpec(
      {
        code_name: query.code_name,
        payload,
        priority: numeric('priority'),
        timeout: numeric('timeout'),
        delay: numeric('delay'),
        cluster: query.cluster,
        label: query.label,
      },
      this.config.tasks,
    );
    const [id] = await this.tasks.create(projectId, [spec]);
    return { id, msg: 'Queued up.' };
  }

  /**
   * Newest first; the filters are `parseTaskListQuery`'s. With `cursor` or `q` the answer has
   * `next_cursor` too (null at the end); without them it is IronWorker's, unchanged.
   */
  @Get()
  async list(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const page = await this.tasks.list(projectId, parseTaskListQuery(query));
    const tasks = page.tasks.map(taskJson);
    if (page.next === undefined) return { tasks };
    return { tasks, next_cursor: page.next ? formatCursor(page.next) : null };
  }

  /**
   * Cancels many tasks as `POST …/tasks/{id}/cancel` cancels one: `{"ids": [...]}` or
   * `{"filter": {...}}` (`parseBulkTarget`).
   */
  @Post('cancel')
  @Role('queue')
  @HttpCode(200)
  async cancelMany(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const target = parseBulkTarget(requireObject(body, 'body'));
    const { done, ...rest } = await this.tasks.cancelMany(projectId, target);
    return { msg: 'Cancelled', cancelled: done, ...bulkRest(rest) };
  }

  /**
   * Retries many tasks as `POST …/tasks/{id}/retry` retries one: `{"ids": [...]}` or
   * `{"filter": {...}}` (`parseBulkTarget`; by filter, only ended tasks not yet retried), and
   * `"delay"` optional.
   */
  @Post('retry')
  @Role('queue')
  @HttpCode(200)
  async retryMany(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const fields = requireObject(body, 'body');
    const target = parseBulkTarget(fields);
    const delay = this.retryDelay(fields);
    const { done, ...rest } = await this.tasks.retryMany(projectId, target, delay);
    return {
      msg: 'Queued up',
      retried: done.length,
      tasks: done.map((task) => ({ id: task.id, original_task_id: task.originalTaskId })),
      ...bulkRest(rest),
    };
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
   *
   * Kiln's `?follow=1` streams it instead (200 at once, even for a queued task): what is stored,
   * then the output as the task prints it, ending when the task ends. Plain text, or Server-Sent
   * Events with `Accept: text/event-stream` (see `streamLog`; `Last-Event-ID` resumes). A project
   * holds at most its `log_followers` quota of such streams per API process, and the process at
   * most `KILN_API_MAX_FOLLOWERS` (429 past either: `FollowerSlots`).
   */
  @Get(':taskId/log')
  async log(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
    @Query('follow') follow: unknown,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const task = await this.tasks.get(projectId, taskId);
    if (isFlagSet(follow)) {
      const release = await this.followerSlots.take(projectId);
      // A client that vanished without closing (host gone, cable cut) would hold its slot until
      // the task ends: TCP keep-alive probes find it.
      req.socket.setKeepAlive(true, FOLLOWER_KEEPALIVE_MS);
      try {
        const after = parsePosition(req.headers['last-event-id']);
        await streamLog(req, res, this.drain.ended, (signal) =>
          this.follower.follow(task, signal, after),
        );
      } finally {
        release();
      }
      return;
    }
    const log = await this.logs.logOf(task);
    res.status(200).setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.send(log);
  }

  /** STDOUT alone (for `sync` tasks, as `tasks.run` reads it); 404 until the task has ended. */
  @Get(':taskId/outlog')
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async outlog(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
  ) {
    return this.logs.outputOf(await this.tasks.get(projectId, taskId));
  }

  @Post(':taskId/cancel')
  @Role('queue')
  @HttpCode(200)
  async cancel(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
  ) {
    await this.tasks.cancel(projectId, taskId);
    return { msg: 'Cancelled' };
  }

  @Post(':taskId/progress')
  @Role('queue')
  @HttpCode(200)
  async progress(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
    @Body() body: unknown,
  ) {
    const read = new FieldReader(requireObject(body, 'body'));
    const percent = read.int('percent', { min: 0, max: 100 });
    const msg = read.string('msg', 65536);
    await this.tasks.setProgress(projectId, taskId, percent, msg);
    return { msg: 'Progress set' };
  }

  /** Queues a new task that runs this one again; `{"delay": s}` optional. */
  @Post(':taskId/retry')
  @Role('queue')
  @HttpCode(200)
  async retry(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
    @Body() body: unknown,
  ) {
    const task = await this.tasks.retry(
      projectId,
      taskId,
      this.retryDelay(requireObject(body, 'body')),
    );
    return { msg: 'Queued up', tasks: [{ id: task.id }] };
  }

  private retryDelay(body: JsonObject): number {
    return new FieldReader(body).int('delay', { min: 0, max: MAX_DELAY_SECONDS }) ?? 0;
  }

  /** The retry chain the task is in (`TasksService.chain`), oldest first, without payloads. */
  @Get(':taskId/chain')
  async chain(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
  ) {
    const chain = await this.tasks.chain(projectId, taskId);
    return { tasks: chain.map(taskSummaryJson) };
  }

  /** The task's webhook deliveries (subscriptions and its own `webhook`), newest first. */
  @Get(':taskId/deliveries')
  async deliveries(
    @Param('projectId', IdPipe) projectId: string,
    @Param('taskId', IdPipe) taskId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const { page, perPage } = parsePage(query);
    await this.tasks.get(projectId, taskId);
    const deliveries = await this.outbox.listOfTask(projectId, taskId, page, perPage);
    return { deliveries: deliveries.map(deliveryJson) };
  }
}

/** A bulk answer's other field: `not_found` (by ids) or `more` (by filter). */
function bulkRest(rest: { notFound: number } | { more: boolean }) {
  return 'notFound' in rest ? { not_found: rest.notFound } : { more: rest.more };
}
