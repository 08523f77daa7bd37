import { Injectable } from '@nestjs/common';
import { QueryFailedError } from 'typeorm';
import { KilnException, RecentValues } from '@kiln/common';
import { CodeStore } from './code-store';
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

  constructor(private readonly store: CodeStore) {}

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
            cpus: existing.cpus,
            memoryMb: existing.memoryMb,
            hot: existing.hot,
            zipDigest: existing.zipDigest,
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
      return await this.store.addRevision(projectId, name, specFor);
    } catch (error) {
      // Two first registrations of one name raced; the loser becomes revision 2.
      if (
        error instanceof QueryFailedError &&
        (error as { code?: string }).code === UNIQUE_VIOLATION
      ) {
        return this.store.addRevision(projectId, name, specFor);
      }
      throw error;
    } finally {
      this.forget(projectId, name);
    }
  }

  async get(projectId: string, id: string): Promise<Code> {
    const code = await this.store.live(projectId, id);
    if (!code) throw KilnException.notFound('Code not found');
    return code;
  }

  async findByName(projectId: string, name: string): Promise<Code | null> {
    return this.store.liveByName(projectId, name);
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
    return this.store.list(projectId, page, perPage);
  }

  async revision(id: string): Promise<CodeRevision | null> {
    return this.store.revision(id);
  }

  async revisions(
    projectId: string,
    codeId: string,
    page: number,
    perPage: number,
  ): Promise<CodeRevision[]> {
    await this.get(projectId, codeId);
    return this.store.revisionsOf(codeId, page, perPage);
  }

  /** The revision `rev` of a code, or its latest when `rev` is undefined. */
  async revisionOf(
    projectId: string,
    codeId: string,
    rev: number | undefined,
  ): Promise<{ code: Code; revision: CodeRevision }> {
    const code = await this.get(projectId, codeId);
    const revision = await this.store.revisionByRev(codeId, rev ?? code.rev);
    if (!revision) throw KilnException.notFound(`Revision ${rev} of this code not found`);
    return { code, revision };
  }

  /**
   * Deletes a code: it is gone from the API and cannot be queued; its name can be registered
   * again as a new code. Its revisions stay, for the tasks that ran them.
   */
  async delete(projectId: string, codeId: string): Promise<void> {
    const code = await this.get(projectId, codeId);
    await this.store.markDeleted(projectId, codeId);
    this.forget(projectId, code.name);
  }

  /** Pauses or resumes the code's task queue; false when it already was so. */
  async setPaused(projectId: string, codeId: string, paused: boolean): Promise<boolean> {
    const code = await this.get(projectId, codeId);
    const changed = await this.store.setPaused(projectId, codeId, paused);
    this.forget(projectId, code.name);
    return changed;
  }
}
