import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, IsNull, Repository } from 'typeorm';
import { newId, SecretBox, SecretKeys, sealedContext } from '@kiln/common';
import { KILN_CONFIG } from '@kiln/config';
import { hydrator, preparedQuery, selectColumns } from '@kiln/database';
import { Code } from './code.entity';
import { CodeRevision } from './code-revision.entity';
import { CodeSpec } from './code-spec';

/**
 * The SQL of codes and their revisions. A "live" code is one not deleted. {@link CodesService}
 * holds the decisions (404s, the queueing cache, retrying a raced first registration).
 *
 * A code's `env_vars` are sealed at rest (SecretBox): the jsonb column holds a JSON string, the
 * sealed JSON of the variables, instead of the object (an empty object, or a legacy row written
 * before sealing or without a key, stays an object). Everything returned here holds them open.
 */
@Injectable()
export class CodeStore {
  private readonly box: SecretBox;

  private hydrate?: (row: Record<string, unknown>) => Code;
  private codeColumns?: string;

  constructor(
    @Inject(KILN_CONFIG) keys: SecretKeys,
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(Code) private readonly codes: Repository<Code>,
    @InjectRepository(CodeRevision) private readonly revisions: Repository<CodeRevision>,
  ) {
    this.box = SecretBox.from(keys);
  }

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
      const existing = this.opened(
        await manager.findOne(Code, {
          where: { projectId, name, deletedAt: IsNull() },
          lock: { mode: 'pessimistic_write' },
        }),
      );
      const spec = specFor(existing);
      const code =
        existing ?? manager.create(Code, { id: newId(), projectId, name: spec.name, rev: 0 });
      const envVars = this.sealEnv(projectId, code.id, spec.envVars);
      const revision = manager.create(CodeRevision, {
        id: newId(),
        codeId: code.id,
        projectId,
        rev: code.rev + 1,
        image: spec.image,
        command: spec.command,
        config: spec.config,
        envVars,
        cpus: spec.cpus,
        memoryMb: spec.memoryMb,
        hot: spec.hot,
        zipDigest: spec.zipDigest,
      });
      Object.assign(code, {
        rev: revision.rev,
        latestRevisionId: revision.id,
        image: spec.image,
        command: spec.command,
        config: spec.config,
        envVars,
        maxConcurrency: spec.maxConcurrency,
        retries: spec.retries,
        retriesDelay: spec.retriesDelay,
        defaultPriority: spec.defaultPriority,
        cpus: spec.cpus,
        memoryMb: spec.memoryMb,
        hot: spec.hot,
        zipDigest: spec.zipDigest,
      });
      await manager.save(code);
      await manager.save(revision);
      return Object.assign(code, { envVars: spec.envVars });
    });
  }

  /** What the column stores of `env`: sealed, unless empty or this server has no key. */
  private sealEnv(
    projectId: string,
    codeId: string,
    env: Record<string, string>,
  ): Record<string, string> {
    if (Object.keys(env).length === 0 || !this.box.sealing) return env;
    // The jsonb column takes a JSON string as well as an object (see the class comment).
    return this.box.seal(
      JSON.stringify(env),
      sealedContext.codeEnvVars(projectId, codeId),
    ) as unknown as Record<string, string>;
  }

  /** `row` with its env_vars open. */
  private opened<T extends Code | CodeRevision | null>(row: T): T {
    if (!row || typeof row.envVars !== 'string') return row;
    const codeId = row instanceof CodeRevision ? row.codeId : row.id;
    row.envVars = JSON.parse(
      this.box.open(row.envVars, sealedContext.codeEnvVars(row.projectId, codeId)),
    ) as Record<string, string>;
    return row;
  }

  /** One live code of the project (`GET …/codes/{id}`): a prepared statement, no query builder. */
  async live(projectId: string, id: string): Promise<Code | null> {
    const { rows } = await preparedQuery(
      this.dataSource,
      'kiln_code_live',
      `SELECT ${(this.codeColumns ??= selectColumns(this.dataSource, Code))}
         FROM codes WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL`,
      [id, projectId],
    );
    this.hydrate ??= hydrator(this.dataSource, Code);
    return rows[0] ? this.opened(this.hydrate(rows[0])) : null;
  }

  async liveByName(projectId: string, name: string): Promise<Code | null> {
    return this.opened(await this.codes.findOneBy({ projectId, name, deletedAt: IsNull() }));
  }

  /** A project's live codes, newest first. */
  async list(projectId: string, page: number, perPage: number): Promise<Code[]> {
    const codes = await this.codes.find({
      where: { projectId, deletedAt: IsNull() },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
    return codes.map((code) => this.opened(code));
  }

  async revision(id: string): Promise<CodeRevision | null> {
    return this.opened(await this.revisions.findOneBy({ id }));
  }

  async revisionByRev(codeId: string, rev: number): Promise<CodeRevision | null> {
    return this.opened(await this.revisions.findOneBy({ codeId, rev }));
  }

  /** A code's revisions, newest first. */
  async revisionsOf(codeId: string, page: number, perPage: number): Promise<CodeRevision[]> {
    const revisions = await this.revisions.find({
      where: { codeId },
      order: { rev: 'DESC' },
      skip: page * perPage,
      take: perPage,
    });
    return revisions.map((revision) => this.opened(revision));
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
