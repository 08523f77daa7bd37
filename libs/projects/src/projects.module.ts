import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Project } from './project.entity';
import { Token } from './token.entity';
import { ProjectLimits } from './project-limits';
import { ProjectsService } from './projects.service';
import { TokensService } from './tokens.service';

@Module({
  imports: [TypeOrmModule.forFeature([Project, Token])],
  providers: [ProjectsService, TokensService, ProjectLimits],
  exports: [ProjectsService, TokensService, ProjectLimits],
})
export class ProjectsModule {}
