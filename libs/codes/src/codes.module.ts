import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Code } from './code.entity';
import { CodeRevision } from './code-revision.entity';
import { CodeStore } from './code-store';
import { CodesService } from './codes.service';

@Module({
  imports: [TypeOrmModule.forFeature([Code, CodeRevision])],
  providers: [CodeStore, CodesService],
  exports: [CodesService],
})
export class CodesModule {}
