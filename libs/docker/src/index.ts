export * from './docker-engine';
export * from './frame-demuxer';
export * from './tar';
export * from './docker.module';
