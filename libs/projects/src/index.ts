export * from './project.entity';
export * from './token.entity';
export * from './projects.service';
export * from './projects.module';
export * from './project-limits';
