import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { formatTime, KilnException, queryString } from '@kiln/common';
import { CredentialsService, parseCredentials } from '@kiln/images';
import { IdPipe } from '../http/params';

/**
 * Registry logins of a project (`iron docker login`): workers pull the project's images from
 * private registries with them. Passwords are stored sealed and never answered.
 */
@Controller('2/projects/:projectId/credentials')
export class CredentialsController {
  constructor(private readonly credentials: CredentialsService) {}

  @Post()
  @HttpCode(200)
  async add(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    await this.credentials.store(projectId, parseCredentials(body));
    return { msg: 'Credentials added.' };
  }

  @Get()
  async list(@Param('projectId', IdPipe) projectId: string) {
    const rows = await this.credentials.list(projectId);
    return {
      credentials: rows.map((row) => ({
        serveraddress: row.serverAddress,
        username: row.username,
        created_at: formatTime(row.createdAt),
        updated_at: formatTime(row.updatedAt),
      })),
    };
  }

  @Delete()
  async delete(
    @Param('projectId', IdPipe) projectId: string,
    @Query() query: Record<string, unknown>,
  ) {
    const serverAddress = queryString(query, 'serveraddress');
    if (serverAddress === undefined) {
      throw KilnException.badRequest('serveraddress is required (?serveraddress=host:port)');
    }
    await this.credentials.delete(projectId, serverAddress);
    return { msg: 'Deleted' };
  }
}
