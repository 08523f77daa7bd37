import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { CodesService } from '@kiln/codes';
import { KilnException, newId, SecretBox, sealedContext } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { ProjectLimits, checkQuota } from '@kiln/projects';
import { newWebhookSecret } from '../signing';
import { LogDrain } from './log-drain.entity';
import { LogDrainSpec, drainTarget } from './log-drain-spec';

/** A project's log drains: made, listed, changed and deleted through the API. */
@Injectable()
export class LogDrainsService {
  private readonly box: SecretBox;

  constructor(
    @Inject(KILN_CONFIG) config: KilnConfig,
    @InjectRepository(LogDrain) private readonly drains: Repository<LogDrain>,
    private readonly codes: CodesService,
    private readonly limits: ProjectLimits,
  ) {
    this.box = SecretBox.from(config);
  }

  /**
   * A new drain, within the project's quota of drains (429 past it). An HTTPS drain gets a
   * signing secret: the entity returned holds it in plain text, to be shown this once.
   */
  async create(projectId: string, spec: LogDrainSpec): Promise<LogDrain> {
    await this.checkCode(projectId, spec.codeName);
    const held = await this.drains.countBy({ projectId });
    checkQuota('logDrains', await this.limits.quota(projectId, 'logDrains'), held);
    const now = new Date();
    const id = newId(now);
    const secret = drainTarget(spec.url!).kind === 'https' ? newWebhookSecret() : null;
    const drain = this.drains.create({
      id,
      projectId,
      url: spec.url!,
      codeName: spec.codeName ?? null,
      secret: secret && this.box.store(secret, sealedContext.logDrainSecret(projectId, id)),
      failures: 0,
      retryAt: null,
      lastError: null,
      deliveredLines: '0',
      droppedLines: '0',
      createdAt: now,
      updatedAt: now,
    });
    const saved = await this.drains.save(drain);
    return Object.assign(saved, { secret });
  }

  async list(projectId: string): Promise<LogDrain[]> {
    return this.drains.find({ where: { projectId }, order: { createdAt: 'ASC', id: 'ASC' } });
  }

  async get(projectId: string, id: string): Promise<LogDrain> {
    const drain = await this.drains.findOneBy({ projectId, id });
    if (!drain) throw KilnException.notFound('Log drain not found');
    return drain;
  }

  /**
   * Applies the fields given. A new URL starts afresh (no failures, tried at once); moving an
   * HTTPS drain to syslog drops its secret, moving a syslog drain to HTTPS is refused: the
   * secret is only shown when a drain is made.
   */
  async update(projectId: string, id: string, spec: LogDrainSpec): Promise<LogDrain> {
    const drain = await this.get(projectId, id);
    if (spec.codeName !== undefined) await this.checkCode(projectId, spec.codeName);
    if (spec.url !== undefined && spec.url !== drain.url) {
      const https = drainTarget(spec.url).kind === 'https';
      if (https && drain.secret === null) {
        throw KilnException.badRequest(
          'a syslog drain cannot become an https one (it has no signing secret): make a new drain',
        );
      }
      if (!https) drain.secret = null;
      drain.url = spec.url;
      drain.failures = 0;
      drain.retryAt = null;
      drain.lastError = null;
    }
    if (spec.codeName !== undefined) drain.codeName = spec.codeName;
    drain.updatedAt = new Date();
    return this.drains.save(drain);
  }

  async delete(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    await this.drains.delete({ projectId, id });
  }

  private async checkCode(projectId: string, codeName: string | null | undefined): Promise<void> {
    if (!codeName) return;
    if (!(await this.codes.findByName(projectId, codeName))) {
      throw KilnException.badRequest(`code_name: no code named "${codeName}" in this project`);
    }
  }
}
