/**
 * Metadata scale: a single-process save and load of N tiny tensors, timing the
 * parts that grow with the item count rather than the bytes: planning (everything
 * from the save call to the first data write), the data write, the commit (finish)
 * and the load's planning. Run for several N to show the growth is linear.
 */
import type { Redis } from 'ioredis';
import { save } from '../src/core/save.js';
import { load } from '../src/core/load.js';
import { Tensor } from '../src/core/tensor.js';
import type { StateDict } from '../src/core/state-dict.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { RedisStorageReader } from '../src/redis/reader.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { TimedStorageReader, TimedStorageWriter } from './timed-storage.js';

export interface ScalePoint {
  readonly items: number;
  /** save() call → first writeData call (local/global planning, collectives, writer prepare). */
  readonly planMs: number;
  readonly writeMs: number;
  /** finish(): metadata write and commit. */
  readonly commitMs: number;
  readonly saveMs: number;
  /** load() call → first readData call (metadata read + parse, load planning). */
  readonly loadPlanMs: number;
  readonly loadMs: number;
  /** (planMs + commitMs) per 1,000 items. */
  readonly planCommitMsPer1k: number;
  readonly verified: boolean;
}

const ELEMENTS = 16;

function tinyStateDict(items: number, filled: boolean): StateDict {
  const sd: StateDict = {};
  for (let i = 0; i < items; i++) {
    const t = new Tensor('float32', [ELEMENTS]);
    if (filled) for (let j = 0; j < ELEMENTS; j++) t.data[j] = i + j / 32;
    sd[`p${i}`] = t;
  }
  return sd;
}

export async function measureScalePoint(redis: Redis, prefix: string, items: number, checkpointId: string): Promise<ScalePoint> {
  const writer = new TimedStorageWriter(new RedisStorageWriter({ redis, prefix, overwrite: true }));
  const source = tinyStateDict(items, true);
  const t0 = performance.now();
  await save(source, { storageWriter: writer, checkpointId });
  const saveMs = performance.now() - t0;

  const reader = new TimedStorageReader(new RedisStorageReader({ redis, prefix }));
  const dest = tinyStateDict(items, false);
  const t1 = performance.now();
  await load(dest, { storageReader: reader, checkpointId });
  const loadMs = performance.now() - t1;
  let verified = true;
  for (let i = 0; i < items && verified; i++) {
    const a = (source[`p${i}`] as Tensor<'float32'>).data;
    const b = (dest[`p${i}`] as Tensor<'float32'>).data;
    for (let j = 0; j < ELEMENTS; j++) if (a[j] !== b[j]) verified = false;
  }
  await new CheckpointCatalog({ redis, prefix }).delete(checkpointId);

  const planMs = writer.times.startOf('writeData', t0) ?? NaN;
  const commitMs = writer.times.ms.finish ?? NaN;
  return {
    items,
    planMs,
    writeMs: writer.times.ms.writeData ?? NaN,
    commitMs,
    saveMs,
    loadPlanMs: reader.times.startOf('readData', t1) ?? NaN,
    loadMs,
    planCommitMsPer1k: ((planMs + commitMs) / items) * 1000,
    verified,
  };
}

/** Per-item cost at the largest N over per-item cost at the smallest: ~1 means linear. */
export function growthRatio(points: readonly ScalePoint[]): number {
  if (points.length < 2) return 1;
  const first = points[0]!;
  const last = points[points.length - 1]!;
  return last.planCommitMsPer1k / first.planCommitMsPer1k;
}
