/**
 * The model both incremental-save fuzz tests (standalone and Cluster) change state dicts with:
 * three checkpoint ids, four 64 KiB tensors cut into 16 KiB pieces, changes to whole tensors or
 * row ranges, and a writer that fails after its pieces were claimed and written.
 */
import type { SavePlan, SavePlanner } from '../../src/core/planner.js';
import type { StateDict } from '../../src/core/state-dict.js';
import type { WriteResult } from '../../src/core/storage.js';
import { Tensor } from '../../src/core/tensor.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { seededTensor } from '../fixtures/incremental-data.js';

export const IDS = ['f/0', 'f/1', 'f/2'];
export const TENSORS = 4;
export const ROWS = 64;
export const COLS = 256; // 64 KiB tensors: 5 pieces each
export const segmentBytes = 16 * 1024 - 64;

/** A writer whose writeData fails once its pieces are claimed and written (the save aborts). */
export class FailingWriter extends RedisStorageWriter {
  override async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    await super.writeData(plan, planner);
    throw new Error('injected failure after the pieces were claimed');
  }
}

export type Change = { kind: 'none' } | { kind: 'tensor'; index: number; seed: number } | { kind: 'rows'; index: number; from: number; count: number; delta: number };

/** A copy whose tensors own their bytes (changes to it leave `sd` alone). */
export function copyOf(sd: StateDict): StateDict {
  const out: StateDict = {};
  for (const [k, v] of Object.entries(sd)) out[k] = v instanceof Tensor ? new Tensor('float32', v.shape, Float32Array.from(v.data as Float32Array)) : v;
  return out;
}

export function applyChange(sd: StateDict, c: Change): void {
  if (c.kind === 'tensor') sd[`t${c.index}`] = seededTensor(ROWS, COLS, c.seed);
  if (c.kind === 'rows') {
    const data = (sd[`t${c.index}`] as Tensor).data as Float32Array;
    for (let i = c.from * COLS; i < Math.min(ROWS, c.from + c.count) * COLS; i++) data[i] = c.delta * 1000 + i;
  }
}
