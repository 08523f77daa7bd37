export * from './project.entity';
export * from './token.entity';
export * from './token-roles';
export * from './projects.service';
export * from './tokens.service';
export * from './token-spec';
export * from './projects.module';
export * from './project-limits';
