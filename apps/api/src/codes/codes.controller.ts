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
  Res,
  UploadedFiles,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import {
  INT32_MAX,
  isPlainObject,
  JsonObject,
  KilnException,
  parsePage,
  queryInt,
} from '@kiln/common';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import {
  Code,
  CodeSpec,
  CodesService,
  parseCodeName,
  parseCodeSpec,
  parseZipCodeSpec,
} from '@kiln/codes';
import {
  ImageAccess,
  ImageUploadsService,
  UploadedCode,
  ZipPackage,
  ZipPackagesService,
  tarballTypeProblem,
} from '@kiln/images';
import { TasksService, parseStatsWindow } from '@kiln/tasks';
import { BodyKind } from '../http/body';
import { IdPipe } from '../http/params';
import { codeJson, revisionJson } from './code.presenter';
import { UploadedCodeFile } from './upload-storage';
import { zipArchive } from './zip';
import { Role } from '../auth/roles';

@Controller('2/projects/:projectId/codes')
export class CodesController {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly codes: CodesService,
    private readonly tasks: TasksService,
    private readonly uploads: ImageUploadsService,
    private readonly access: ImageAccess,
    private readonly zips: ZipPackagesService,
  ) {}

  /**
   * Registers an image as a code, or a new revision of the code with that name. Takes IronWorker's
   * multipart form (a `data` part holding JSON) and plain JSON alike. A multipart `file` part is
   * a zip code package (docs/api.md "Zip packages"), or else a `docker save` tarball (plain or
   * gzip), streamed through the module's upload storage: the zip, or the tarball's image, is pushed
   * to the platform registry and the revision holds it by digest.
   */
  @Post()
  @HttpCode(200)
  @UseInterceptors(
    FileFieldsInterceptor([{ name: 'file', maxCount: 1 }], {
      limits: { fieldSize: 1024 * 1024, fields: 20, files: 1 },
    }),
  )
  async register(
    @Param('projectId', IdPipe) projectId: string,
    @Body() body: unknown,
    @UploadedFiles() files: { file?: UploadedCodeFile[] } | undefined,
  ) {
    const upload = files?.file?.[0];
    try {
      const data = registrationData(body);
      if (upload?.zip) return await this.registerZip(projectId, data, upload.zip);
      if (upload?.archive) {
        const spec = parseCodeSpec(data, this.config.container, { imageOptional: true });
        return uploadAnswer(await this.uploads.register(projectId, spec, upload.archive));
      }
      const spec = parseCodeSpec(data, this.config.container);
      await this.access.checkRegistration(projectId, spec.image);
      const code = await this.codes.register(projectId, spec);
      return { id: code.id, msg: 'Upload successful.' };
    } finally {
      await (upload?.zip ?? upload?.archive)?.dispose();
    }
  }

  /** A revision holding the zip, on the image `data` names (or its stack's). */
  private async registerZip(projectId: string, data: JsonObject, zip: ZipPackage) {
    const spec = parseZipCodeSpec(data, this.config.container, this.config.stacks);
    // A stack's image is the operator's choice; an image the upload names is checked as any.
    if (typeof data.image === 'string' && data.image !== '') {
      await this.access.checkRegistration(projectId, spec.image);
    }
    return zipAnswer(await this.zips.register(projectId, spec, zip));
  }

  /**
   * Kiln's raw upload: the body is a `docker save` tarball (plain or gzip). A new revision of the
   * code with that image and its other settings unchanged; the code is created if missing.
   */
  @Post(':codeName/image')
  @BodyKind('streamed')
  @HttpCode(200)
  async uploadImage(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeName') codeName: string,
    @Req() req: Request,
  ) {
    const problem = tarballTypeProblem(req.headers['content-type']);
    if (problem) {
      req.resume();
      throw problem;
    }
    const defaults: CodeSpec = parseCodeSpec(
      { name: parseCodeName(codeName) },
      this.config.container,
      { imageOptional: true },
    );
    const archive = await this.uploads.receive(req, Number(req.headers['content-length'] ?? NaN));
    try {
      return uploadAnswer(await this.uploads.replaceImage(projectId, defaults, archive));
    } finally {
      await archive.dispose();
    }
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
   * The zip of the revision (`?revision=N`, default the latest): its zip package as uploaded, or,
   * for an image-only revision, a generated zip holding `kiln-code.json`: the image, command,
   * config and env vars that revision runs.
   */
  @Get(':codeId/download')
  async download(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Query() query: Record<string, unknown>,
    @Res() res: Response,
  ) {
    const rev =
      query.revision === undefined ? undefined : queryInt(query, 'revision', 1, 1, INT32_MAX);
    const { code, revision } = await this.codes.revisionOf(projectId, codeId, rev);
    // No `attachment;` prefix: Python's client strips a leading `filename=` from this header.
    const fileName = `${code.name.replace(/[^A-Za-z0-9._-]/g, '_')}_${revision.rev}.zip`;
    const headers = {
      'Content-Type': 'application/zip',
      'Content-Disposition': `filename=${fileName}`,
    };
    if (revision.zipDigest) {
      const zip = await this.zips.open(projectId, revision.zipDigest);
      res.status(200).set(headers);
      // Past the headers an error can only cut the answer short: the client sees a truncated zip.
      await pipeline(zip, res).catch(() => res.destroy());
      return;
    }
    const manifest = JSON.stringify(revisionJson(code, revision), null, 2) + '\n';
    res
      .status(200)
      .set(headers)
      .send(zipArchive([{ name: 'kiln-code.json', content: Buffer.from(manifest) }]));
  }

  /** Task counts per status over `start_date`..`end_date` (epoch seconds; default the last 24 h). */
  @Get(':codeId/stats')
  async stats(
    @Param('projectId', IdPipe) projectId: string,
    @Param('codeId', IdPipe) codeId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const code = await this.codes.get(projectId, codeId);
    const { start, end } = parseStatsWindow(query);
    return this.tasks.statsOfCode(code.id, start, end);
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
  @Role('queue')
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

function zipAnswer(code: Code) {
  return {
    id: code.id,
    msg: 'Upload successful.',
    rev: code.rev,
    image: code.image,
    zip_digest: code.zipDigest,
  };
}

function uploadAnswer({ code, image }: UploadedCode) {
  return { id: code.id, msg: 'Upload successful.', rev: code.rev, image };
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
