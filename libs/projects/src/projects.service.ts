import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnException, newId } from '@kiln/common';
import { Project } from './project.entity';

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

  /** Sets how many of the project's tasks may run at once in a cluster (null: the default). */
  async setMaxRunning(id: string, maxRunning: number | null): Promise<Project> {
    const project = await this.get(id);
    project.maxRunning = maxRunning;
    return this.projects.save(project);
  }
}
