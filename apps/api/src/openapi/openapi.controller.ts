import { Controller, Get } from '@nestjs/common';
import { Public } from '../auth/guards';
import { openApiDocument } from './document';

/**
 * The API described (OpenAPI 3.1), for anyone: it holds no secret, and clients in other
 * languages are generated from it (docs/api.md, "The API described").
 */
@Controller()
export class OpenApiController {
  private readonly document = openApiDocument();

  @Get('openapi.json')
  @Public()
  describe() {
    return this.document;
  }
}
