import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CodesModule } from '@kiln/codes';
import { ProjectsModule } from '@kiln/projects';
import { LeaseStore } from './lease-store';
import { Schedule } from './schedule.entity';
import { ScheduleStore } from './schedule-store';
import { SchedulesService } from './schedules.service';

@Module({
  imports: [TypeOrmModule.forFeature([Schedule]), CodesModule, ProjectsModule],
  providers: [SchedulesService, LeaseStore, ScheduleStore],
  exports: [SchedulesService, LeaseStore, ScheduleStore, TypeOrmModule],
})
export class SchedulesModule {}
