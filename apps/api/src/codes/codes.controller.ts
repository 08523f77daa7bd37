import {
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { JsonObject, KilnException, isPlainObject } from '@kiln/common';
import { CodesService, parseCodeSpec } from '@kiln/codes';
import { ProjectGuard } from '../auth/guards';
import { IdPipe, parsePage } from '../http/params';
import { codeJson } from './code.presenter';
import { discardingStorage } from './discarding-storage';

@Controller('2/projects/:projectId/codes')
@UseGuards(ProjectGuard)
export class CodesController {
  constructor(private readonly codes: CodesService) {}

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
