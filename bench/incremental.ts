/**
 * Incremental saves in `npm run bench` (one rank, in process, steady Redis): a full save of
 * the state dict (non-incremental, the baseline), the first incremental save (every piece
 * new: what hashing costs), then incremental saves with 10 % and 0 % of the bytes changed.
 * Figures: incremental_save_gbps (logical bytes / time), incremental_speedup (full save time /
 * incremental save time), incremental_stored_ratio (stored / logical), and the hash cost
 * (BLAKE3 over the state dict, one core) against the full save. See docs/performance.md.
 */
import type { Redis } from 'ioredis';
import { save } from '../src/core/save.js';
import type { StateDict } from '../src/core/state-dict.js';
import { Tensor } from '../src/core/tensor.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { pieceHash } from '../src/redis/pieces.js';
import { RedisStorageWriter } from '../src/redis/writer.js';

const MIB = 2 ** 20;
/** Tensors of the benchmark's state dict: changes touch whole tensors, like a fine-tune's trained layers. */
const TENSORS = 20;

export interface IncrementalSummary {
  readonly incremental_state_dict_bytes: number;
  readonly incremental_full_save_s: number;
  readonly incremental_first_save_s: number;
  readonly incremental_hash_s: number;
  /** BLAKE3 time over the whole state dict / full save time (target < 0.15). */
  readonly incremental_hash_cost_ratio: number;
  readonly incremental_10pct_save_s: number;
  readonly incremental_10pct_save_gbps: number;
  readonly incremental_10pct_speedup: number;
  readonly incremental_10pct_stored_ratio: number;
  readonly incremental_0pct_save_s: number;
  readonly incremental_0pct_save_gbps: number;
  readonly incremental_0pct_speedup: number;
  readonly incremental_0pct_stored_ratio: number;
  /** The headline figures: the 10 %-changed save. */
  readonly incremental_save_gbps: number;
  readonly incremental_speedup: number;
  readonly incremental_stored_ratio: number;
  readonly incremental_targets: Record<string, { target: string; met: boolean }>;
}

function stateDict(bytes: number, version: (i: number) => number): StateDict {
  const per = Math.max(4, Math.floor(bytes / TENSORS / 4));
  const sd: StateDict = {};
  for (let i = 0; i < TENSORS; i++) {
    const data = new Float32Array(per);
    const v = version(i);
    for (let j = 0; j < per; j += 1024) data[j] = i * 1e6 + v * 1e3 + j; // distinct content per tensor and version
    sd[`layer${i}`] = new Tensor('float32', [per], data);
  }
  return sd;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

export async function incrementalFigures(redis: Redis, prefix: string, bytes: number, note: (text: string) => void): Promise<IncrementalSummary> {
  const catalog = new CheckpointCatalog({ redis, prefix });
  const writer = (incremental: boolean) => new RedisStorageWriter({ redis, prefix, incremental });
  const base = stateDict(bytes, () => 0);
  const logical = Object.values(base).reduce<number>((n, t) => n + (t as Tensor).bytes.byteLength, 0);
  try {
    // Warm-up (JIT, connections), then the full save measured against a Redis that has its memory.
    await save(base, { checkpointId: 'inc/warm', storageWriter: writer(false) });
    await catalog.delete('inc/warm');
    const full = await timed(() => save(base, { checkpointId: 'inc/full', storageWriter: writer(false) }));
    note(`full save ${(logical / full / 1e9).toFixed(2)} GB/s`);
    const first = await timed(() => save(base, { checkpointId: 'inc/0', storageWriter: writer(true) }));
    let hash = Infinity;
    for (let r = 0; r < 3; r++) hash = Math.min(hash, await timed(async () => Object.values(base).forEach((t) => pieceHash((t as Tensor).bytes))));
    const tenth = stateDict(bytes, (i) => (i < TENSORS / 10 ? 1 : 0));
    const ten = await timed(() => save(tenth, { checkpointId: 'inc/10', storageWriter: writer(true) }));
    const stored10 = (await catalog.get('inc/10')).storedBytes;
    const zero = await timed(() => save(tenth, { checkpointId: 'inc/00', storageWriter: writer(true) }));
    const stored0 = (await catalog.get('inc/00')).storedBytes;
    note(`incremental 10 %: ${(full / ten).toFixed(1)}x, 0 %: ${(full / zero).toFixed(1)}x`);
    const s = {
      incremental_state_dict_bytes: logical,
      incremental_full_save_s: full,
      incremental_first_save_s: first,
      incremental_hash_s: hash,
      incremental_hash_cost_ratio: hash / full,
      incremental_10pct_save_s: ten,
      incremental_10pct_save_gbps: logical / ten / 1e9,
      incremental_10pct_speedup: full / ten,
      incremental_10pct_stored_ratio: stored10 / logical,
      incremental_0pct_save_s: zero,
      incremental_0pct_save_gbps: logical / zero / 1e9,
      incremental_0pct_speedup: full / zero,
      incremental_0pct_stored_ratio: stored0 / logical,
    };
    return {
      ...s,
      incremental_save_gbps: s.incremental_10pct_save_gbps,
      incremental_speedup: s.incremental_10pct_speedup,
      incremental_stored_ratio: s.incremental_10pct_stored_ratio,
      incremental_targets: {
        incremental_10pct_speedup: { target: '>= 5', met: s.incremental_10pct_speedup >= 5 },
        incremental_10pct_stored_ratio: { target: '<= 0.12', met: s.incremental_10pct_stored_ratio <= 0.12 },
        incremental_0pct_speedup: { target: '>= 10', met: s.incremental_0pct_speedup >= 10 },
        incremental_hash_cost_ratio: { target: '< 0.15', met: s.incremental_hash_cost_ratio < 0.15 },
      },
    };
  } finally {
    for (const id of ['inc/full', 'inc/0', 'inc/10', 'inc/00']) await catalog.delete(id);
    await catalog.close();
  }
}

export function printIncrementalTable(s: IncrementalSummary): void {
  const mark = (name: string) => (s.incremental_targets[name]!.met ? 'met' : 'MISSED');
  const lines = [
    '',
    `incremental saves (1 rank, ${(s.incremental_state_dict_bytes / MIB).toFixed(0)} MiB in ${TENSORS} tensors, steady Redis)`,
    `  full save (not incremental)        ${s.incremental_full_save_s.toFixed(3)} s`,
    `  first incremental save (all new)   ${s.incremental_first_save_s.toFixed(3)} s; BLAKE3 of the state dict ${s.incremental_hash_s.toFixed(3)} s = ${s.incremental_hash_cost_ratio.toFixed(3)} of the full save (target < 0.15: ${mark('incremental_hash_cost_ratio')})`,
    `  10 % changed                       ${s.incremental_10pct_save_s.toFixed(3)} s, ${s.incremental_10pct_save_gbps.toFixed(2)} GB/s logical, ${s.incremental_10pct_speedup.toFixed(1)}x (target >= 5: ${mark('incremental_10pct_speedup')}), stored ratio ${s.incremental_10pct_stored_ratio.toFixed(3)} (target <= 0.12: ${mark('incremental_10pct_stored_ratio')})`,
    `  0 % changed                        ${s.incremental_0pct_save_s.toFixed(3)} s, ${s.incremental_0pct_save_gbps.toFixed(2)} GB/s logical, ${s.incremental_0pct_speedup.toFixed(1)}x (target >= 10: ${mark('incremental_0pct_speedup')}), stored ratio ${s.incremental_0pct_stored_ratio.toFixed(3)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
