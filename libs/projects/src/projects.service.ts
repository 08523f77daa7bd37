import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnException, newId } from '@kiln/common';
import { Project } from './project.entity';

/** The operator's settings of one project; a field left out is left as it is. */
export interface ProjectSettings {
  maxRunning?: number | null;
  retentionDays?: number | null;
}

@Injectable()
export class ProjectsService {
  constructor(@InjectRepository(Project) private readonly projects: Repository<Project>) {}

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

  /**
   * Changes the operator's settings of a project that `changes` names (null: back to the
   * operator's default): how many of its tasks may run at once in a cluster, how many days its
   * finished tasks are kept.
   */
  async updateSettings(id: string, changes: ProjectSettings): Promise<Project> {
    const project = await this.get(id);
    if (changes.maxRunning !== undefined) project.maxRunning = changes.maxRunning;
    if (changes.retentionDays !== undefined) project.retentionDays = changes.retentionDays;
    return this.projects.save(project);
  }
}
