/**
 * Staging for `asyncSave` (DCP's staging.py): copy every byte a save needs out of the
 * caller's state dict, so the caller may change it while the upload runs. The default
 * stager copies into SharedArrayBuffer-backed memory that a worker thread reads without
 * a second copy, and keeps that memory between saves of a same-shaped state dict (DCP's
 * `cache_staged_state_dict`): the second and later saves allocate nothing.
 * See docs/format.md, "Async save".
 */
import { DcpValueError } from './errors.js';
import { flattenStateDict, setElement } from './flatten.js';
import type { ObjectPath } from './metadata.js';
import type { JsonValue, StateDict } from './state-dict.js';
import { ShardedTensor, Tensor, typedArrayFromBytes, type DType } from './tensor.js';

/** DCP's AsyncStager protocol. */
export interface AsyncStager {
  /**
   * Returns a copy of `stateDict` that does not share memory with it (tensors, bytes and
   * JSON values). Once it resolves the caller may mutate `stateDict`.
   */
  stage(stateDict: StateDict): Promise<StateDict>;
  /** Waits until the last `stage` has finished copying (a no-op for stagers that copy before resolving). */
  synchronizeStaging(): Promise<void>;
  /** Releases the staging memory. */
  close(): Promise<void>;
}

/** One leaf of a staged state dict, in a form that crosses threads (`postMessage`); bytes are views. */
export type StagedLeaf =
  | { readonly kind: 'tensor'; readonly dtype: DType; readonly shape: readonly number[]; readonly bytes: Uint8Array }
  | { readonly kind: 'sharded'; readonly dtype: DType; readonly globalShape: readonly number[]; readonly shards: ReadonlyArray<{ readonly offsets: readonly number[]; readonly shape: readonly number[]; readonly bytes: Uint8Array }> }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'json'; readonly value: JsonValue };

/** A state dict as (path, leaf) pairs in traversal order: rebuilds the same items on the other side. */
export type StagedEntries = ReadonlyArray<readonly [ObjectPath, StagedLeaf]>;

/** The leaves of `stateDict` as entries (views of its memory, nothing copied). */
export function stateDictEntries(stateDict: StateDict): StagedEntries {
  const { flat, mappings } = flattenStateDict(stateDict);
  return Object.keys(flat).map((fqn) => {
    const value = flat[fqn];
    let leaf: StagedLeaf;
    if (value instanceof Tensor) leaf = { kind: 'tensor', dtype: value.dtype, shape: value.shape, bytes: value.bytes };
    else if (value instanceof ShardedTensor) {
      leaf = { kind: 'sharded', dtype: value.dtype, globalShape: value.globalShape, shards: value.localShards.map((s) => ({ offsets: s.offsets, shape: s.tensor.shape, bytes: s.tensor.bytes })) };
    } else if (value instanceof Uint8Array) leaf = { kind: 'bytes', bytes: value };
    else leaf = { kind: 'json', value: value as JsonValue };
    return [mappings[fqn]!, leaf] as const;
  });
}

/** Rebuilds a state dict from entries; tensors view the entries' bytes (no copy). */
export function stateDictFromEntries(entries: StagedEntries): StateDict {
  const root: StateDict = {};
  for (const [path, leaf] of entries) setElement(root, path, leafValue(leaf));
  return root;
}

function leafValue(leaf: StagedLeaf): unknown {
  switch (leaf.kind) {
    case 'tensor':
      return new Tensor(leaf.dtype, leaf.shape, typedArrayFromBytes(leaf.dtype, leaf.bytes));
    case 'sharded':
      return new ShardedTensor(
        leaf.globalShape,
        leaf.dtype,
        leaf.shards.map((s) => ({ offsets: s.offsets, tensor: new Tensor(leaf.dtype, s.shape, typedArrayFromBytes(leaf.dtype, s.bytes)) })),
      );
    case 'bytes':
      return leaf.bytes;
    case 'json':
      return leaf.value;
  }
}

/** Largest SharedArrayBuffer the default stager allocates; bigger state dicts use several. */
const SLAB_BYTES = 1 << 30;
/** Every staged item starts at a multiple of this (covers every dtype's alignment). */
const ALIGN = 64;

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** What makes two state dicts "the same shape" for reuse: paths, kinds, dtypes, shapes, byte lengths. */
function signatureOf(entries: StagedEntries): string {
  return JSON.stringify(
    entries.map(([path, leaf]) => {
      if (leaf.kind === 'tensor') return [path, 't', leaf.dtype, leaf.shape];
      if (leaf.kind === 'sharded') return [path, 's', leaf.dtype, leaf.globalShape, leaf.shards.map((s) => [s.offsets, s.shape])];
      if (leaf.kind === 'bytes') return [path, 'b', leaf.bytes.byteLength];
      return [path, 'j'];
    }),
  );
}

interface Staging {
  readonly signature: string;
  readonly buffers: SharedArrayBuffer[];
  /** Destinations in traversal order of every byte range to copy (tensors, shards, bytes). */
  readonly targets: Uint8Array[];
  readonly entries: Array<[ObjectPath, StagedLeaf]>;
}

/**
 * The default stager (DCP's DefaultStager with cached staging): copies tensors and bytes
 * into SharedArrayBuffers it keeps (at most 1 GiB each), and JSON values by value. A
 * state dict with the same paths, dtypes, shapes and byte lengths as the last one is
 * copied into the same buffers; anything else replaces them.
 *
 * The staged dict is valid until the next `stage`: `asyncSave` never stages into buffers
 * an upload still reads (one save in flight per stager).
 */
export class DefaultStager implements AsyncStager {
  private staging: Staging | undefined;
  /** SharedArrayBuffers allocated since construction (does not grow when buffers are reused). */
  allocations = 0;

  /** The buffers currently held. */
  get buffers(): readonly SharedArrayBuffer[] {
    return this.staging?.buffers ?? [];
  }

  /** Bytes of staging memory currently held. */
  get stagedBytes(): number {
    return this.buffers.reduce((n, b) => n + b.byteLength, 0);
  }

  async stage(stateDict: StateDict): Promise<StateDict> {
    return stateDictFromEntries(this.stageEntries(stateDict));
  }

  /** Like `stage`, as entries (what asyncSave sends to its worker). */
  stageEntries(stateDict: StateDict): StagedEntries {
    const source = stateDictEntries(stateDict);
    const signature = signatureOf(source);
    if (this.staging?.signature !== signature) this.staging = this.allocate(signature, source);
    const { targets, entries } = this.staging;
    let t = 0;
    source.forEach(([, leaf], i) => {
      if (leaf.kind === 'tensor' || leaf.kind === 'bytes') targets[t++]!.set(leaf.bytes);
      else if (leaf.kind === 'sharded') for (const shard of leaf.shards) targets[t++]!.set(shard.bytes);
      else entries[i]![1] = { kind: 'json', value: structuredClone(leaf.value) };
    });
    return entries;
  }

  async synchronizeStaging(): Promise<void> {}

  async close(): Promise<void> {
    this.staging = undefined;
  }

  /** Lays the state dict's byte ranges out over as few slabs as possible and builds the staged entries over them. */
  private allocate(signature: string, source: StagedEntries): Staging {
    this.staging = undefined; // let the old buffers go before the new ones are allocated
    const sizes: number[] = [];
    for (const [, leaf] of source) {
      if (leaf.kind === 'tensor' || leaf.kind === 'bytes') sizes.push(leaf.bytes.byteLength);
      else if (leaf.kind === 'sharded') for (const s of leaf.shards) sizes.push(s.bytes.byteLength);
    }
    // Slab boundaries: a new slab when the next range would overflow the current one.
    const places: Array<{ slab: number; offset: number }> = [];
    const slabSizes: number[] = [];
    for (const size of sizes) {
      const current = slabSizes.length - 1;
      if (current < 0 || (slabSizes[current]! > 0 && align(slabSizes[current]!) + size > SLAB_BYTES)) slabSizes.push(0);
      const slab = slabSizes.length - 1;
      const offset = align(slabSizes[slab]!);
      places.push({ slab, offset });
      slabSizes[slab] = offset + size;
    }
    const buffers = slabSizes.map((n) => new SharedArrayBuffer(Math.max(n, 1)));
    this.allocations += buffers.length;
    const targets = sizes.map((size, i) => new Uint8Array(buffers[places[i]!.slab]!, places[i]!.offset, size));
    let t = 0;
    const entries = source.map(([path, leaf]): [ObjectPath, StagedLeaf] => {
      switch (leaf.kind) {
        case 'tensor':
          return [path, { ...leaf, bytes: targets[t++]! }];
        case 'bytes':
          return [path, { kind: 'bytes', bytes: targets[t++]! }];
        case 'sharded':
          return [path, { ...leaf, shards: leaf.shards.map((s) => ({ ...s, bytes: targets[t++]! })) }];
        case 'json':
          return [path, leaf];
      }
    });
    if (t !== targets.length) throw new DcpValueError('DCP_VALUE_ERROR', 'staging layout out of step with the state dict');
    return { signature, buffers, targets, entries };
  }
}
