/**
 * The synthetic state dict of the benchmark: a few large float32 tensors row-sharded
 * across ranks, many small replicated tensors and some replicated bytes items.
 *
 * Every value is a pure function of (item seed, global element index), so any rank
 * can check what it loaded without the saver's copy: a load that skipped, misplaced
 * or corrupted bytes fails verification instead of reporting a fast wrong figure.
 */
import { ShardedTensor, Tensor } from '../src/core/tensor.js';
import type { StateDict } from '../src/core/state-dict.js';

export interface LayoutOptions {
  /** Total unique bytes of the state dict (all ranks together). */
  readonly totalBytes: number;
  /** Number of small replicated tensors. */
  readonly smallItems: number;
}

export interface LargeTensorSpec {
  readonly fqn: string;
  readonly rows: number;
  readonly cols: number;
  readonly seed: number;
}

export interface ReplicatedSpec {
  readonly fqn: string;
  readonly bytes: number;
  readonly seed: number;
}

export interface Layout {
  readonly large: readonly LargeTensorSpec[];
  readonly small: readonly ReplicatedSpec[];
  readonly blobs: readonly ReplicatedSpec[];
  /** Unique bytes of the whole state dict. */
  readonly totalBytes: number;
}

const LARGE_TENSORS = 4;
const LARGE_COLS = 1024; // 4 KiB rows
const SMALL_TENSOR_BYTES = 1024;
const BLOB_ITEMS = 8;
const BLOB_BYTES = 64 << 10;

/** The same layout on every rank and in every process for the same options. */
export function makeLayout(opts: LayoutOptions): Layout {
  const small = Array.from({ length: opts.smallItems }, (_, i) => ({ fqn: `small.${i}`, bytes: SMALL_TENSOR_BYTES, seed: 1000 + i }));
  const blobs = Array.from({ length: BLOB_ITEMS }, (_, i) => ({ fqn: `blob.${i}`, bytes: BLOB_BYTES, seed: 500 + i }));
  const replicated = small.length * SMALL_TENSOR_BYTES + blobs.length * BLOB_BYTES;
  const rowBytes = LARGE_COLS * 4;
  const rowsTotal = Math.max(LARGE_TENSORS, Math.floor(Math.max(0, opts.totalBytes - replicated) / rowBytes));
  // Uneven sizes on purpose (shards of different lengths, a remainder row block).
  const large = Array.from({ length: LARGE_TENSORS }, (_, i) => {
    const rows = i < LARGE_TENSORS - 1 ? Math.floor(rowsTotal / LARGE_TENSORS) : rowsTotal - Math.floor(rowsTotal / LARGE_TENSORS) * (LARGE_TENSORS - 1);
    return { fqn: `layers.${i}.weight`, rows, cols: LARGE_COLS, seed: 1 + i };
  });
  const totalBytes = large.reduce((s, t) => s + t.rows * t.cols * 4, 0) + replicated;
  return { large, small, blobs, totalBytes };
}

/** Rows [start, end) of `rows` that rank `rank` of `world` holds (even blocks, remainder spread). */
export function rowBlock(rows: number, world: number, rank: number): { start: number; end: number } {
  return { start: Math.floor((rows * rank) / world), end: Math.floor((rows * (rank + 1)) / world) };
}

/**
 * Expected 32-bit word `index` of the item with `seed` (a 32-bit integer hash). Bit 30
 * is cleared so that, read as float32, no word is NaN/Inf and none equals SENTINEL.
 */
function word(seed: number, index: number): number {
  let h = Math.imul(seed, 0x9e3779b1) ^ index;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h & 0xbfffffff) >>> 0;
}

/** What unloaded memory holds before a load: never produced by `word`. */
const SENTINEL = 0xffffffff;

function fillWords(words: Uint32Array, seed: number, firstIndex: number): void {
  for (let i = 0; i < words.length; i++) words[i] = word(seed, firstIndex + i);
}

/** Number of words of `words` that differ from the expected content. */
function countMismatches(words: Uint32Array, seed: number, firstIndex: number): number {
  let bad = 0;
  for (let i = 0; i < words.length; i++) if (words[i] !== word(seed, firstIndex + i)) bad++;
  return bad;
}

function wordsOf(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
}

export interface RankStateDict {
  readonly stateDict: StateDict;
  /** Bytes this rank holds (its shards plus all replicated items). */
  readonly bytes: number;
}

/**
 * Rank `rank`'s state dict. `filled`: the expected content (to save); otherwise
 * tensors pre-touched with SENTINEL (as a training process's live parameters would be)
 * and empty bytes items (to load into).
 */
export function makeRankStateDict(layout: Layout, world: number, rank: number, filled: boolean): RankStateDict {
  let bytes = 0;
  const tensor = (shape: number[], seed: number, firstIndex: number): Tensor<'float32'> => {
    const t = new Tensor('float32', shape);
    const words = wordsOf(t.bytes);
    if (filled) fillWords(words, seed, firstIndex);
    else words.fill(SENTINEL);
    bytes += t.byteLength;
    return t;
  };
  const layers: StateDict = {};
  for (const spec of layout.large) {
    const { start, end } = rowBlock(spec.rows, world, rank);
    const shards = end > start ? [{ offsets: [start, 0], tensor: tensor([end - start, spec.cols], spec.seed, start * spec.cols) }] : [];
    layers[spec.fqn.split('.')[1]!] = { weight: new ShardedTensor([spec.rows, spec.cols], 'float32', shards) };
  }
  const small: StateDict = {};
  for (const spec of layout.small) small[spec.fqn.split('.')[1]!] = tensor([spec.bytes / 4], spec.seed, 0);
  const blob: StateDict = {};
  for (const spec of layout.blobs) {
    const b = new Uint8Array(filled ? spec.bytes : 0);
    if (filled) fillWords(wordsOf(b), spec.seed, 0);
    bytes += spec.bytes;
    blob[spec.fqn.split('.')[1]!] = b;
  }
  return { stateDict: { layers, small, blob }, bytes };
}

export interface Verification {
  readonly verifiedBytes: number;
  readonly mismatchedWords: number;
  readonly problems: readonly string[];
}

/**
 * Sets a state dict to load into back to what makeRankStateDict(…, filled = false) made,
 * keeping the tensors' memory: every tensor word to SENTINEL again, every bytes item empty.
 * A second load into the same (now warm) tensors must then write every byte again.
 */
export function wipeForLoad(stateDict: StateDict): void {
  const { layers, small, blob } = stateDict as { layers: Record<string, { weight: ShardedTensor }>; small: Record<string, Tensor>; blob: Record<string, Uint8Array> };
  for (const layer of Object.values(layers)) for (const shard of layer.weight.localShards) wordsOf(shard.tensor.bytes).fill(SENTINEL);
  for (const t of Object.values(small)) wordsOf(t.bytes).fill(SENTINEL);
  for (const name of Object.keys(blob)) blob[name] = new Uint8Array(0);
}

/** Compares every loaded byte of a rank's state dict with the expected content. */
export function verifyRankStateDict(layout: Layout, stateDict: StateDict, world: number, rank: number): Verification {
  let verifiedBytes = 0;
  let mismatchedWords = 0;
  const problems: string[] = [];
  const check = (fqn: string, bytes: Uint8Array | undefined, expectedBytes: number, seed: number, firstIndex: number) => {
    if (!(bytes instanceof Uint8Array) || bytes.byteLength !== expectedBytes) {
      problems.push(`${fqn}: expected ${expectedBytes} bytes, got ${bytes instanceof Uint8Array ? bytes.byteLength : typeof bytes}`);
      return;
    }
    const bad = countMismatches(wordsOf(bytes), seed, firstIndex);
    if (bad > 0 && problems.length < 10) problems.push(`${fqn}: ${bad} words differ`);
    mismatchedWords += bad;
    verifiedBytes += bytes.byteLength;
  };
  const layers = stateDict.layers as Record<string, { weight: ShardedTensor }>;
  for (const spec of layout.large) {
    const { start, end } = rowBlock(spec.rows, world, rank);
    const shard = layers[spec.fqn.split('.')[1]!]?.weight.localShards[0];
    if (end > start) check(spec.fqn, shard?.tensor.bytes, (end - start) * spec.cols * 4, spec.seed, start * spec.cols);
  }
  const small = stateDict.small as Record<string, Tensor>;
  for (const spec of layout.small) check(spec.fqn, small[spec.fqn.split('.')[1]!]?.bytes, spec.bytes, spec.seed, 0);
  const blob = stateDict.blob as Record<string, Uint8Array>;
  for (const spec of layout.blobs) check(spec.fqn, blob[spec.fqn.split('.')[1]!], spec.bytes, spec.seed, 0);
  return { verifiedBytes, mismatchedWords, problems };
}

/** A deterministic payload for the raw baselines (same generator, one flat buffer). */
export function makePayload(bytes: number): Uint8Array {
  const payload = new Uint8Array(bytes);
  fillWords(wordsOf(payload.subarray(0, bytes & ~3)), 7, 0);
  return payload;
}
