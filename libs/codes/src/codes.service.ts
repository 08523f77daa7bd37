import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, IsNull, QueryFailedError, Repository } from 'typeorm';
import { KilnException, RecentValues, newId } from '@kiln/common';
import { Code } from './code.entity';
import { CodeRevision } from './code-revision.entity';
import { CodeSpec } from './code-spec';

const UNIQUE_VIOLATION = '23505';
/** How long a code looked up for queueing is reused; see findByNameForQueueing. */
const RECENT_CODES_MS = 1000;
const RECENT_CODES_MAX = 10_000;

@Injectable()
export class CodesService {
  private readonly recent = new RecentValues<Code>(RECENT_CODES_MS, RECENT_CODES_MAX);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Code) private readonly codes: Repository<Code>,
    @InjectRepository(CodeRevision) private readonly revisionRows: Repository<CodeRevision>,
  ) {}

  /** Registers a code, or a new revision of the live code with the same name. */
  async register(projectId: string, spec: CodeSpec): Promise<Code> {
    return this.registerRevision(projectId, spec.name, () => spec);
  }

  /**
   * A new revision of code `name` running `image`, its other settings unchanged; a code of that
   * name is created with the defaults of `defaults` if there is none.
   */
  async registerImage(projectId: string, defaults: CodeSpec, image: string): Promise<Code> {
    return this.registerRevision(projectId, defaults.name, (existing) =>
      existing
        ? {
            name: existing.name,
            image,
            command: existing.command,
            config: existing.config,
            envVars: existing.envVars,
            maxConcurrency: existing.maxConcurrency,
            retries: existing.retries,
            retriesDelay: existing.retriesDelay,
            defaultPriority: existing.defaultPriority,
          }
        : { ...defaults, image },
    );
  }

  private async registerRevision(
    projectId: string,
    name: string,
    specFor: (existing: Code | null) => CodeSpec,
  ): Promise<Code> {
    try {
      return await this.registerOnce(projectId, name, specFor);
    } catch (error) {
      // Two first registrations of one name raced; the loser becomes revision 2.
      if (
        error instanceof QueryFailedError &&
        (error as { code?: string }).code === UNIQUE_VIOLATION
      ) {
        return this.registerOnce(projectId, name, specFor);
      }
      throw error;
    } finally {
      this.forget(projectId, name);
    }
  }

  private async registerOnce(
    projectId: string,
    name: string,
    specFor: (existing: Code | null) => CodeSpec,
  ): Promise<Code> {
    return this.dataSource.transaction(async (manager) => {
      const existing = await manager.findOne(Code, {
        where: { projectId, name, deletedAt: IsNull() },
        lock: { mode: 'pessimistic_write' },
      });
      const spec = specFor(existing);
      const code =
        existing ?? manager.create(Code, { id: newId(), projectId, name: spec.name, rev: 0 });
      const revision = manager.create(CodeRevision, {
        id: newId(),
        codeId: code.id,
        projectId,
        rev: code.rev + 1,
        image: spec.image,
        command: spec.command,
        config: spec.config,
        envVars: spec.envVars,
      });
      Object.assign(code, {
        rev: revision.rev,
        latestRevisionId: revision.id,
        image: spec.image,
        command: spec.command,
        config: spec.config,
        envVars: spec.envVars,
        maxConcurrency: spec.maxConcurrency,
        retries: spec.retries,
        retriesDelay: spec.retriesDelay,
        defaultPriority: spec.defaultPriority,
      });
      await manager.save(code);
      await manager.save(revision);
      return code;
    });
  }

  async get(projectId: string, id: string): Promise<Code> {
    const code = await this.codes.findOneBy({ projectId, id, deletedAt: IsNull() });
    if (!code) throw KilnException.notFound('Code not found');
    return code;
  }

  async findByName(projectId: string, name: string): Promise<Code | null> {
    return this.codes.findOneBy({ projectId, name, deletedAt: IsNull() });
  }

  /**
   * `findByName` for task creation, the API's hot path: a code found in the last second is
   * reused. This process forgets a code at once when it registers, deletes or pauses it, so a
   * client that registers a revision and then queues sees the new revision; a change made
   * through another API process is seen within a second.
   */
  async findByNameForQueueing(projectId: string, name: string): Promise<Code | null> {
    const key = `${projectId}/${name}`;
    const cached = this.recent.get(key);
    if (cached) return cached;
    const code = await this.findByName(projectId, name);
    if (code) this.recent.set(key, code);
    return code;
  }

  private forget(projectId: string, name: string): void {
    this.recent.delete(`${projectId}/${name}`);
  }

  async list(projectId: string, page: number, perPage: number): Promise<Code[]> {
    return this.codes.find({
      where: { projectId, deletedAt: IsNull() },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
  }

  async revision(id: string): Promise<CodeRevision | null> {
    return this.revisionRows.findOneBy({ id });
  }

  async revisions(
    projectId: string,
    codeId: string,
    page: number,
    perPage: number,
  ): Promise<CodeRevision[]> {
    await this.get(projectId, codeId);
    return this.revisionRows.find({
      where: { codeId },
      order: { rev: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
  }

  /** The revision `rev` of a code, or its latest when `rev` is undefined. */
  async revisionOf(
    projectId: string,
    codeId: string,
    rev: number | undefined,
  ): Promise<{ code: Code; revision: CodeRevision }> {
    const code = await this.get(projectId, codeId);
    const revision = await this.revisionRows.findOneBy({ codeId, rev: rev ?? code.rev });
    if (!revision) throw KilnException.notFound(`Revision ${rev} of this code not found`);
    return { code, revision };
  }

  /**
   * Deletes a code: it is gone from the API and cannot be queued; its name can be registered
   * again as a new code. Its revisions stay, for the tasks that ran them.
   */
  async delete(projectId: string, codeId: string): Promise<void> {
    const code = await this.get(projectId, codeId);
    await this.codes.update(
      { id: codeId, projectId, deletedAt: IsNull() },
      { deletedAt: () => 'now()' },
    );
    this.forget(projectId, code.name);
  }

  /** Pauses or resumes the code's task queue; false when it already was so. */
  async setPaused(projectId: string, codeId: string, paused: boolean): Promise<boolean> {
    const code = await this.get(projectId, codeId);
    const result = await this.codes.update({ id: codeId, projectId, paused: !paused }, { paused });
    this.forget(projectId, code.name);
    return (result.affected ?? 0) > 0;
  }
}
