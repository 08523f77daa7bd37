import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { JsonObject, KilnException, isPlainObject } from '@kiln/common';
import type { Response } from 'express';
import { CodesService, parseCodeSpec } from '@kiln/codes';
import { TasksService } from '@kiln/tasks';
import { ProjectGuard } from '../auth/guards';
import { IdPipe, parsePage, queryInt } from '../http/params';
import { codeJson, revisionJson } from './code.presenter';
import { zipArchive } from './zip';
import { discardingStorage } from './discarding-storage';

@Controller('2/projects/:projectId/codes')
@UseGuards(ProjectGuard)
export class CodesController {
  constructor(
    private readonly codes: CodesService,
    private readonly tasks: TasksService,
  ) {}

  /**
   * Registers an image as a code, or a new revision of the code with that name. Takes IronWorker's
   * multipart form (a `data` part holding JSON) and plain JSON alike.
   */
  @Post()
  @HttpCode(200)
  @UseInterceptors(
    FileFieldsInterceptor([{ name: 'file', maxCount: 1 }], {
      storage: discardingStorage,
      limits: { fieldSize: 1024 * 1024, fields: 20, files: 1 },
    }),
  )
  async register(
    @Param('projectId', IdPipe) projectId: string,
    @Body() body: unknown,
    @UploadedFiles() files: { file?: unknown[] } | undefined,
  ) {
    const data = registrationData(body);
    if (files?.file?.length && typeof data.image !== 'string') {
      throw KilnException.badRequest(
        'Zip code packages are not supported: Kiln runs Docker images (set "image" in data)',
      );
    }
    const code = await this.codes.register(projectId, parseCodeSpec(data));
    return { id: code.id, msg: 'Upload successful.' };
  }

  @Get()
  async list(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const { page, perPage } = parsePage(query);
    const codes = await this.codes.list(projectId, page, perPage);
    return { codes: codes.map(codeJson) };
  }

  @Get(':codeId')
  async get(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
  ) {
    return codeJson(await this.codes.get(projectId, codeId));
  }

  @Delete(':codeId')
  async delete(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
  ) {
    await this.codes.delete(projectId, codeId);
    return { msg: 'Deleted' };
  }

  @Get(':codeId/revisions')
  async revisions(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const { page, perPage } = parsePage(query);
    const code = await this.codes.get(projectId, codeId);
    const revisions = await this.codes.revisions(projectId, codeId, page, perPage);
    return { revisions: revisions.map((revision) => revisionJson(code, revision)) };
  }

  /**
   * A zip of the revision (`?revision=N`, default the latest). Kiln's codes are images, so it holds
   * `kiln-code.json`: the image, command, config and env vars that revision runs.
   */
  @Get(':codeId/download')
  async download(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Query() query: Record<string, unknown>,
    @Res() res: Response,
  ) {
    const rev =
      query.revision === undefined ? undefined : queryInt(query, 'revision', 1, 1, 2 ** 31 - 1);
    const { code, revision } = await this.codes.revisionOf(projectId, codeId, rev);
    const manifest = JSON.stringify(revisionJson(code, revision), null, 2) + '\n';
    const zip = zipArchive([{ name: 'kiln-code.json', content: Buffer.from(manifest) }]);
    // No `attachment;` prefix: Python's client strips a leading `filename=` from this header.
    const fileName = `${code.name.replace(/[^A-Za-z0-9._-]/g, '_')}_${revision.rev}.zip`;
    res
      .status(200)
      .set({ 'Content-Type': 'application/zip', 'Content-Disposition': `filename=${fileName}` })
      .send(zip);
  }

  /** Task counts per status over `start_date`..`end_date` (epoch seconds; default the last 24 h). */
  @Get(':codeId/stats')
  async stats(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const code = await this.codes.get(projectId, codeId);
    // Epoch seconds round down: by default the window ends after the current second, not in it.
    const now = Math.floor(Date.now() / 1000) + 1;
    const end = queryInt(query, 'end_date', now, 0, Number.MAX_SAFE_INTEGER);
    const start = queryInt(query, 'start_date', end - 24 * 3600, 0, Number.MAX_SAFE_INTEGER);
    return this.tasks.statsOfCode(code.id, new Date(start * 1000), new Date(end * 1000));
  }

  @Post(':codeId/pause_task_queue')
  @HttpCode(200)
  async pause(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
  ) {
    return {
      msg: (await this.codes.setPaused(projectId, codeId, true)) ? 'Paused' : 'Already paused',
    };
  }

  @Post(':codeId/resume_task_queue')
  @HttpCode(200)
  async resume(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
  ) {
    return {
      msg: (await this.codes.setPaused(projectId, codeId, false)) ? 'Resumed' : 'Already resumed',
    };
  }

  /** Cancels every task of the code that has not ended (the path takes the code id). */
  @Post(':codeId/cancel_all')
  @HttpCode(200)
  async cancelAll(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
  ) {
    const code = await this.codes.get(projectId, codeId);
    const cancelled = await this.tasks.cancelAll(projectId, code.id);
    return { msg: 'Cancelled', cancelled };
  }
}

/** The registration object: multipart's `data` part (a JSON string), or the JSON body itself. */
function registrationData(body: unknown): JsonObject {
  if (!isPlainObject(body)) throw KilnException.badRequest('body must be a JSON object');
  if (typeof body.data === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.data);
    } catch (error) {
      throw KilnException.badRequest(`data is not valid JSON: ${(error as Error).message}`);
    }
    if (!isPlainObject(parsed)) throw KilnException.badRequest('data must be a JSON object');
    return parsed;
  }
  if (isPlainObject(body.data)) return body.data;
  return body;
}
