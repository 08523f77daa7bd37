import { Body, Controller, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { requireObject } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { parseInvokeSpec, parseInvokeWait, taskLimitsOf } from '@kiln/tasks';
import { Role } from '../auth/roles';
import { ApiDrain } from '../http/api-drain';
import { BodyKind } from '../http/body';
import { IdPipe } from '../http/params';
import { InvokeSlots } from '../tasks/held-slots';
import { Invoker } from '../tasks/invoker';

/**
 * Kiln's synchronous invoke: `POST …/codes/{name}/invoke?wait=S` with one task's fields queues it
 * at the top priority and answers when it has ended (200 with its status and output), or 504
 * with its id when `wait` seconds pass first (the task goes on). While it waits the request holds
 * one of the project's `invokes` slots in this API process (`InvokeSlots`); a client that goes
 * away releases it at once.
 */
@Controller('2/projects/:projectId/codes')
export class InvokeController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly invoker: Invoker,
    private readonly slots: InvokeSlots,
    private readonly drain: ApiDrain,
  ) {}

  @Post(':codeName/invoke')
  @BodyKind('payload')
  @Role('queue')
  @HttpCode(200)
  async invoke(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeName') codeName: string,
    @Query() query: Record<string, unknown>,
    @Body() body: unknown,
    @Res({ passthrough: true }) res: Response,
  ) {
    const wait = parseInvokeWait(query);
    const spec = parseInvokeSpec(requireObject(body, 'body'), codeName, taskLimitsOf(this.config));
    const release = await this.slots.take(projectId);
    const waiting = new AbortController();
    const end = (): void => waiting.abort();
    const timer = setTimeout(end, wait * 1000);
    res.once('close', end);
    if (this.drain.ended.aborted) end();
    else this.drain.ended.addEventListener('abort', end, { once: true });
    try {
      const { id, result } = await this.invoker.invoke(projectId, spec, waiting.signal);
      if (result) return result;
      res.status(504);
      const why = this.drain.ended.aborted
        ? 'before this API process stopped (it is shutting down)'
        : `within ${wait} s`;
      return { msg: `Task ${id} did not end ${why}: it goes on; poll GET tasks/${id}`, id };
    } finally {
      clearTimeout(timer);
      res.off('close', end);
      this.drain.ended.removeEventListener('abort', end);
      release();
    }
  }
}
