import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, IsNull, Repository } from 'typeorm';
import { newId } from '@kiln/common';
import { Code } from './code.entity';
import { CodeRevision } from './code-revision.entity';
import { CodeSpec } from './code-spec';

/**
 * The SQL of codes and their revisions. A "live" code is one not deleted. {@link CodesService}
 * holds the decisions (404s, the queueing cache, retrying a raced first registration).
 */
@Injectable()
export class CodeStore {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Code) private readonly codes: Repository<Code>,
    @InjectRepository(CodeRevision) private readonly revisions: Repository<CodeRevision>,
  ) {}

  /**
   * In one transaction, with the live code named `name` locked (if any): a new revision with the
   * settings `specFor` gives, and the code updated to it (created at rev 1 if there was none).
   * Two first registrations of one name can race: the loser fails with a unique violation.
   */
  async addRevision(
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
        cpus: spec.cpus,
        memoryMb: spec.memoryMb,
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
        cpus: spec.cpus,
        memoryMb: spec.memoryMb,
      });
      await manager.save(code);
      await manager.save(revision);
      return code;
    });
  }

  async live(projectId: string, id: string): Promise<Code | null> {
    return this.codes.findOneBy({ projectId, id, deletedAt: IsNull() });
  }

  async liveByName(projectId: string, name: string): Promise<Code | null> {
    return this.codes.findOneBy({ projectId, name, deletedAt: IsNull() });
  }

  /** A project's live codes, newest first. */
  async list(projectId: string, page: number, perPage: number): Promise<Code[]> {
    return this.codes.find({
      where: { projectId, deletedAt: IsNull() },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
  }

  async revision(id: string): Promise<CodeRevision | null> {
    return this.revisions.findOneBy({ id });
  }

  async revisionByRev(codeId: string, rev: number): Promise<CodeRevision | null> {
    return this.revisions.findOneBy({ codeId, rev });
  }

  /** A code's revisions, newest first. */
  async revisionsOf(codeId: string, page: number, perPage: number): Promise<CodeRevision[]> {
    return this.revisions.find({
      where: { codeId },
      order: { rev: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
  }

  async markDeleted(projectId: string, codeId: string): Promise<void> {
    await this.codes.update(
      { id: codeId, projectId, deletedAt: IsNull() },
      { deletedAt: () => 'now()' },
    );
  }

  /** Sets `paused`; false when it already was so. */
  async setPaused(projectId: string, codeId: string, paused: boolean): Promise<boolean> {
    const result = await this.codes.update({ id: codeId, projectId, paused: !paused }, { paused });
    return (result.affected ?? 0) > 0;
  }
}
