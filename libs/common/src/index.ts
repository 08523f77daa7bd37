export * from './ids';
export * from './time';
export * from './errors';
export * from './text';
export * from './validate';
export * from './process';
export * from './timeout';
export * from './ip';
