/** The DCP core: data model, planners, save/load drivers. Knows nothing of Redis. */
export * from './errors.js';
export * from './tensor.js';
export * from './metadata.js';
export * from './metadata-json.js';
export * from './planner.js';
export * from './state-dict.js';
export * from './storage.js';
export * from './storage-helpers.js';
export * from './storage-registry.js';
export * from './flatten.js';
// planner building blocks (after DCP's planner_helpers.py, resharding.py, default_planner.py and utils.py)
export { findShard, findStateDictObject, findTensorShard, formatSize, tensorProperties, type FlatStateDict } from './planner-utils.js';
export * from './planner-helpers.js';
export { chunksOverlap } from './resharding.js';
export * from './plan-validation.js';
export * from './default-plans.js';
export * from './dedup.js';
export * from './default-planner.js';
export * from './tensor-box.js';
export { save, type SaveOptions } from './save.js';
export { load, type LoadOptions } from './load.js';
export { asyncSave, type AsyncSaveOptions, type AsyncSaveResponse } from './async-save.js';
export { DefaultStager, type AsyncStager } from './staging.js';
export { waitForPendingSave } from './in-flight.js';
