import { Module } from '@nestjs/common';
import { DockerEngine } from './docker-engine';

@Module({ providers: [DockerEngine], exports: [DockerEngine] })
export class DockerModule {}
