/**
 * redis-dcp: PyTorch Distributed Checkpoint's storage layer on Redis.
 * Every public name is exported from here.
 */
export * from './core/index.js';
export type { ProcessGroup } from './dist/process-group.js';
export { createLocalGroups, type LocalGroupOptions } from './dist/local-group.js';
