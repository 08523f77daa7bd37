import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Project } from './project.entity';
import { Token } from './token.entity';
import { ProjectLimits } from './project-limits';
import { ProjectsService } from './projects.service';

@Module({
  imports: [TypeOrmModule.forFeature([Project, Token])],
  providers: [ProjectsService, ProjectLimits],
  exports: [ProjectsService, ProjectLimits],
})
export class ProjectsModule {}
