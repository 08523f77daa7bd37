import { Body, Controller, Delete, Get, Param, Put, UseGuards } from '@nestjs/common';
import { formatTime, requireObject } from '@kiln/common';
import {
  ProjectLimits,
  ProjectPolicy,
  QUOTA_FIELDS,
  QuotaName,
  parseQuotaOverrides,
} from '@kiln/projects';
import { AdminGuard } from '../auth/guards';
import { IdPipe } from '../http/params';

function quotasJson(policy: ProjectPolicy) {
  const byField = (values: Partial<Record<QuotaName, number>>) =>
    Object.fromEntries(
      (Object.keys(QUOTA_FIELDS) as QuotaName[])
        .filter((name) => values[name] !== undefined)
        .map((name) => [QUOTA_FIELDS[name], values[name]]),
    );
  return { quotas: byField(policy.quotas), overrides: byField(policy.overrides) };
}

/**
 * A project's granted clusters and quotas (docs/security.md). The project's token may read them;
 * only the admin changes them.
 */
@Controller('2/projects/:projectId')
export class ProjectLimitsController {
  constructor(private readonly limits: ProjectLimits) {}

  @Get('clusters')
  async clusters(@Param('projectId', IdPipe) projectId: string) {
    const grants = await this.limits.grants(projectId);
    return {
      clusters: grants.map((grant) => ({
        name: grant.cluster,
        granted_at: formatTime(grant.grantedAt),
      })),
    };
  }

  @Put('clusters/:cluster')
  @UseGuards(AdminGuard)
  async grant(@Param('projectId', IdPipe) projectId: string, @Param('cluster') cluster: string) {
    await this.limits.grant(projectId, cluster);
    return { msg: 'Granted', cluster };
  }

  @Delete('clusters/:cluster')
  @UseGuards(AdminGuard)
  async revoke(@Param('projectId', IdPipe) projectId: string, @Param('cluster') cluster: string) {
    await this.limits.revoke(projectId, cluster);
    return { msg: 'Revoked', cluster };
  }

  @Get('quotas')
  async quotas(@Param('projectId', IdPipe) projectId: string) {
    return quotasJson(await this.limits.quotasOf(projectId));
  }

  @Put('quotas')
  @UseGuards(AdminGuard)
  async setQuotas(@Param('projectId', IdPipe) projectId: string, @Body() body: unknown) {
    const changes = parseQuotaOverrides(requireObject(body, 'body'));
    return { msg: 'Updated', ...quotasJson(await this.limits.setQuotas(projectId, changes)) };
  }
}
