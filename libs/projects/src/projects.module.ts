import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Project } from './project.entity';
import { Token } from './token.entity';
import { ProjectsService } from './projects.service';

@Module({
  imports: [TypeOrmModule.forFeature([Project, Token])],
  providers: [ProjectsService],
  exports: [ProjectsService],
})
export class ProjectsModule {}
