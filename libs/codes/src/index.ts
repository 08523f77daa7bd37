export * from './code.entity';
export * from './code-revision.entity';
export * from './code-spec';
export * from './codes.service';
export * from './codes.module';
