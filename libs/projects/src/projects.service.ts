import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnException, RecentValues, hashSecret, newId, newSecret } from '@kiln/common';
import { Project } from './project.entity';
import { Token } from './token.entity';

export interface IssuedToken {
  id: string;
  projectId: string;
  /** The secret; shown to its owner once and never stored. */
  token: string;
}

const KNOWN_TOKENS_MS = 5000;
const KNOWN_TOKENS_MAX = 10_000;

@Injectable()
export class ProjectsService {
  private readonly known = new RecentValues<string>(KNOWN_TOKENS_MS, KNOWN_TOKENS_MAX);

  constructor(
    @InjectRepository(Project) private readonly projects: Repository<Project>,
    @InjectRepository(Token) private readonly tokens: Repository<Token>,
  ) {}

  async create(name: string): Promise<Project> {
    const project = this.projects.create({ id: newId(), name });
    return this.projects.save(project);
  }

  async get(id: string): Promise<Project> {
    const project = await this.projects.findOneBy({ id });
    if (!project) throw KilnException.notFound('Project not found');
    return project;
  }

  async list(): Promise<Project[]> {
    return this.projects.find({ order: { createdAt: 'ASC' } });
  }

  /** The projects a caller sees: every one for the admin, its own for a project's token. */
  async visibleTo(
    caller: { admin: true } | { admin: false; projectId: string },
  ): Promise<Project[]> {
    return caller.admin ? this.list() : [await this.get(caller.projectId)];
  }

  /** Sets how many of the project's tasks may run at once in a cluster (null: the default). */
  async setMaxRunning(id: string, maxRunning: number | null): Promise<Project> {
    const project = await this.get(id);
    project.maxRunning = maxRunning;
    return this.projects.save(project);
  }

  async issueToken(projectId: string, name = ''): Promise<IssuedToken> {
    await this.get(projectId);
    const secret = newSecret();
    const token = this.tokens.create({
      id: newId(),
      projectId,
      tokenHash: hashSecret(secret),
      name,
    });
    await this.tokens.save(token);
    return { id: token.id, projectId, token: secret };
  }

  /**
   * The project a token belongs to, or null when the token is unknown. Known tokens are
   * remembered for a few seconds (by hash), sparing a query per request on hot paths.
   */
  async projectOfToken(secret: string): Promise<string | null> {
    const hash = hashSecret(secret);
    const cached = this.known.get(hash);
    if (cached) return cached;
    const token = await this.tokens.findOneBy({ tokenHash: hash });
    if (!token) return null;
    this.known.set(hash, token.projectId);
    return token.projectId;
  }
}
