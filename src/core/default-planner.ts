/**
 * DCP's DefaultSavePlanner and DefaultLoadPlanner (default_planner.py).
 */
import { dedupSavePlans } from './dedup.js';
import { DcpError, DcpValueError, GlobalPlanValidationError } from './errors.js';
import { assertFlatStateDict, flattenStateDict, isPlainObject, setElement, setOwn } from './flatten.js';
import { DCP_VERSION, type FlattenMappings, type Metadata, type MetadataIndex, type ObjectPath, type StorageMeta } from './metadata.js';
import { createDefaultGlobalLoadPlan, createDefaultGlobalSavePlan, createDefaultLocalLoadPlan, createDefaultLocalSavePlan } from './default-plans.js';
import { findGlobalPlanProblems } from './plan-validation.js';
import { findStateDictObject, formatSize, type FlatStateDict } from './planner-utils.js';
import { WriteItemType, type LoadPlan, type LoadPlanner, type ReadItem, type SavePlan, type SavePlanner, type TensorRegion, type WriteData, type WriteItem } from './planner.js';
import type { StateDict } from './state-dict.js';
import { Tensor } from './tensor.js';

export interface DefaultSavePlannerOptions {
  /** Flatten nested dicts to dotted FQNs (the mapping goes to planner data). Default true. */
  readonly flattenStateDict?: boolean;
  /** Keep replicated items on one rank only. Default true. (DCP ≥ 2.4 always dedups.) */
  readonly dedupReplicatedTensors?: boolean;
  /** Give every replicated item to the lowest rank holding it instead of balancing bytes. Default false. */
  readonly dedupSaveToLowestRank?: boolean;
}

export interface DefaultLoadPlannerOptions {
  readonly flattenStateDict?: boolean;
  /** Skip state dict keys the checkpoint lacks instead of failing. Default false. */
  readonly allowPartialLoad?: boolean;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function notSetUp(what: string): DcpError {
  return new DcpError('PLANNER_NOT_SET_UP', `${what} was called before setUpPlanner`);
}

/** Merges the ranks' flatten mappings; the first rank that maps an FQN wins (ChainMap order). */
function mergeMappings(plans: readonly SavePlan[]): FlattenMappings {
  const merged: FlattenMappings = {};
  for (const plan of plans) {
    const data = plan.plannerData;
    if (data === undefined || data === null) continue;
    if (!isPlainObject(data)) throw new DcpValueError('PLAN_INVALID', 'Failed to create global plan: planner data of a rank is not an FQN → path mapping');
    for (const fqn of Object.keys(data)) {
      if (!Object.prototype.hasOwnProperty.call(merged, fqn)) setOwn(merged, fqn, data[fqn] as ObjectPath);
    }
  }
  return merged;
}

/** The flat view both planners work on: dotted FQNs with their nesting paths, or the dict as given. */
function prepareStateDict(stateDict: StateDict, flatten: boolean): { flat: FlatStateDict; mappings: FlattenMappings } {
  if (flatten) return flattenStateDict(stateDict);
  assertFlatStateDict(stateDict);
  return { flat: stateDict, mappings: {} };
}

export class DefaultSavePlanner implements SavePlanner {
  readonly flattenStateDict: boolean;
  readonly dedupReplicatedTensors: boolean;
  readonly dedupSaveToLowestRank: boolean;
  /** FQN → path in the caller's nested dict (empty without flattening). */
  mappings: FlattenMappings = {};
  stateDict: FlatStateDict | undefined;
  storageMeta: StorageMeta | undefined;
  isCoordinator = false;
  plan: SavePlan | undefined;
  globalPlan: SavePlan[] | undefined;
  metadata: Metadata | undefined;

  constructor(options: DefaultSavePlannerOptions = {}) {
    this.flattenStateDict = options.flattenStateDict ?? true;
    this.dedupReplicatedTensors = options.dedupReplicatedTensors ?? true;
    this.dedupSaveToLowestRank = options.dedupSaveToLowestRank ?? false;
  }

  /** Flattens and validates the state dict: an unsupported value fails here, before any I/O. */
  setUpPlanner(stateDict: StateDict, storageMeta: StorageMeta | undefined, isCoordinator: boolean): void {
    ({ flat: this.stateDict, mappings: this.mappings } = prepareStateDict(stateDict, this.flattenStateDict));
    this.storageMeta = storageMeta;
    this.isCoordinator = isCoordinator;
  }

  createLocalPlan(): SavePlan {
    if (this.stateDict === undefined) throw notSetUp('createLocalPlan');
    let plan = createDefaultLocalSavePlan(this.stateDict, this.isCoordinator);
    if (this.flattenStateDict) plan = { ...plan, plannerData: this.mappings };
    this.plan = plan;
    return plan;
  }

  /**
   * Dedups replicated items, builds the metadata (with the merged mappings as planner
   * data, this rank's storage meta and the format version) and validates it; an
   * invalid plan throws GlobalPlanValidationError ("Failed to validate global plan: …").
   */
  createGlobalPlan(allPlans: SavePlan[]): [SavePlan[], Metadata] {
    const plans = this.dedupReplicatedTensors ? dedupSavePlans(allPlans, this.dedupSaveToLowestRank) : allPlans;
    const [globalPlan, built] = createDefaultGlobalSavePlan(plans);
    const metadata: Metadata = {
      ...built,
      ...(this.flattenStateDict ? { plannerData: mergeMappings(globalPlan) } : {}),
      ...(this.storageMeta !== undefined ? { storageMeta: this.storageMeta } : {}),
      version: DCP_VERSION,
    };
    const problems = findGlobalPlanProblems(metadata);
    if (problems.length > 0) throw new GlobalPlanValidationError(problems);
    this.globalPlan = globalPlan;
    this.metadata = metadata;
    return [globalPlan, metadata];
  }

  finishPlan(newPlan: SavePlan): SavePlan {
    this.plan = newPlan;
    return newPlan;
  }

  /** The object an item names in the flattened state dict. */
  lookupObject(index: MetadataIndex): ReturnType<typeof findStateDictObject> {
    if (this.stateDict === undefined) throw notSetUp('resolveData');
    return findStateDictObject(this.stateDict, index);
  }

  /**
   * TENSOR/SHARD: the Tensor (the local shard for a SHARD item), never a copy.
   * BYTE_IO: the Uint8Array itself for raw bytes, UTF-8 JSON text for a JSON value.
   */
  resolveData(writeItem: WriteItem): WriteData {
    const value = this.lookupObject(writeItem.index);
    if (writeItem.type !== WriteItemType.BYTE_IO) {
      if (!(value instanceof Tensor)) throw new DcpValueError('TYPE_MISMATCH', `Write item "${writeItem.index.fqn}" is a ${writeItem.type} item but the state dict value is not a tensor`);
      return value;
    }
    const encoding = writeItem.bytesIoData?.encoding ?? (value instanceof Uint8Array ? 'raw' : 'json');
    if (value instanceof Tensor) throw new DcpValueError('TYPE_MISMATCH', `Write item "${writeItem.index.fqn}" is a BYTE_IO item but the state dict value is a tensor`);
    if (encoding === 'raw') {
      if (!(value instanceof Uint8Array)) throw new DcpValueError('TYPE_MISMATCH', `Write item "${writeItem.index.fqn}" expects raw bytes but the state dict value is not a Uint8Array`);
      return value;
    }
    if (value instanceof Uint8Array) throw new DcpValueError('TYPE_MISMATCH', `Write item "${writeItem.index.fqn}" expects a JSON value but the state dict value is a Uint8Array`);
    return utf8Encoder.encode(JSON.stringify(value));
  }
}

export class DefaultLoadPlanner implements LoadPlanner {
  readonly flattenStateDict: boolean;
  readonly allowPartialLoad: boolean;
  /** The caller's dict: bytes and JSON values are assigned into it. */
  originalStateDict: StateDict = {};
  /** FQN → path in `originalStateDict`, from flattening it (not from the checkpoint). */
  mappings: FlattenMappings = {};
  stateDict: FlatStateDict | undefined;
  metadata: Metadata | undefined;
  isCoordinator = false;

  constructor(options: DefaultLoadPlannerOptions = {}) {
    this.flattenStateDict = options.flattenStateDict ?? true;
    this.allowPartialLoad = options.allowPartialLoad ?? false;
  }

  setUpPlanner(stateDict: StateDict, metadata: Metadata | undefined, isCoordinator: boolean): void {
    this.originalStateDict = stateDict;
    ({ flat: this.stateDict, mappings: this.mappings } = prepareStateDict(stateDict, this.flattenStateDict));
    this.metadata = metadata;
    this.isCoordinator = isCoordinator;
  }

  createLocalPlan(): LoadPlan {
    if (this.stateDict === undefined) throw notSetUp('createLocalPlan');
    if (this.metadata === undefined) throw new DcpError('PLANNER_NOT_SET_UP', 'createLocalPlan needs the checkpoint metadata; setUpPlanner got none');
    return createDefaultLocalLoadPlan(this.stateDict, this.metadata, !this.allowPartialLoad);
  }

  createGlobalPlan(globalPlan: LoadPlan[]): LoadPlan[] {
    return createDefaultGlobalLoadPlan(globalPlan);
  }

  finishPlan(centralPlan: LoadPlan): LoadPlan {
    return centralPlan;
  }

  /**
   * Decodes a BYTE_IO item by its saved encoding ("raw": the bytes as a plain
   * Uint8Array view, "json": parsed UTF-8 JSON) and assigns it into the caller's dict
   * at the value's original nested place.
   */
  loadBytes(readItem: ReadItem, value: Uint8Array): void {
    const fqn = readItem.destIndex.fqn;
    const md = this.metadata?.stateDictMetadata[fqn];
    if (md === undefined || !Object.prototype.hasOwnProperty.call(this.metadata!.stateDictMetadata, fqn)) {
      throw new DcpValueError('ITEM_NOT_FOUND', `Checkpoint metadata has no item "${fqn}"`);
    }
    if (md.type !== 'bytes') throw new DcpValueError('TYPE_MISMATCH', `Item "${fqn}" is a tensor in the checkpoint; it cannot be loaded as bytes`);
    let decoded: unknown;
    if (md.encoding === 'raw') {
      decoded = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    } else {
      try {
        decoded = JSON.parse(utf8Decoder.decode(value));
      } catch (cause) {
        throw new DcpError('CORRUPT_ITEM', `Item "${fqn}" is not valid UTF-8 JSON: ${(cause as Error).message}`, { cause });
      }
    }
    if (this.flattenStateDict) {
      const path = Object.prototype.hasOwnProperty.call(this.mappings, fqn) ? this.mappings[fqn] : undefined;
      if (path === undefined) throw new DcpValueError('ITEM_NOT_FOUND', `No state dict entry for "${fqn}"`);
      setElement(this.originalStateDict, path, decoded);
    } else {
      setOwn(this.originalStateDict, fqn, decoded);
    }
    if (this.stateDict !== undefined) setOwn(this.stateDict, fqn, decoded);
  }

  lookupTensor(index: MetadataIndex): Tensor {
    if (this.stateDict === undefined) throw notSetUp('resolveTensor');
    const value = findStateDictObject(this.stateDict, index);
    if (!(value instanceof Tensor)) throw new DcpValueError('TYPE_MISMATCH', `State dict value "${index.fqn}" is not a tensor`);
    return value;
  }

  /** The caller's own Tensor (or local shard) and the box of it this item fills. */
  resolveTensor(readItem: ReadItem): TensorRegion {
    const tensor = this.lookupTensor(readItem.destIndex);
    const { destOffsets: offsets, lengths } = readItem;
    const shape = tensor.shape;
    if (offsets.length !== shape.length || lengths.length !== shape.length) {
      throw new DcpValueError('ITEM_OUT_OF_BOUNDS', `Read item for "${readItem.destIndex.fqn}" has ${offsets.length} offsets for a tensor of shape ${formatSize(shape)}`);
    }
    for (let d = 0; d < shape.length; d++) {
      if (offsets[d]! < 0 || lengths[d]! < 0 || offsets[d]! + lengths[d]! > shape[d]!) {
        throw new DcpValueError('ITEM_OUT_OF_BOUNDS', `Read item for "${readItem.destIndex.fqn}" (offsets ${formatSize(offsets)}, lengths ${formatSize(lengths)}) exceeds the tensor shape ${formatSize(shape)}`);
      }
    }
    return { tensor, offsets, lengths };
  }

  commitTensor(_readItem: ReadItem, _region: TensorRegion): void {}
}
