/**
 * Incremental saves in `npm run bench` (one rank, in process, steady Redis): the first
 * incremental save (every piece new: what hashing costs), then interleaved rounds of a full
 * save (non-incremental, the baseline) and incremental saves with 10 % and 0 % of the bytes
 * changed. `npm run bench -- --only incremental` runs this part alone on its own Redis.
 * Figures: incremental_save_gbps (logical bytes / time), incremental_speedup (full save time /
 * incremental save time), incremental_stored_ratio (stored / logical), and the hash cost
 * (BLAKE3 over the state dict, one core) against the full save. See docs/performance.md.
 */
import { loadavg } from 'node:os';
import type { Redis } from 'ioredis';
import { save } from '../src/core/save.js';
import type { StateDict } from '../src/core/state-dict.js';
import { Tensor } from '../src/core/tensor.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { xxh64 } from '@node-rs/xxhash';
import { pieceHash } from '../src/redis/pieces.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { median } from './report.js';

const MIB = 2 ** 20;
/** Tensors of the benchmark's state dict: changes touch whole tensors, like a fine-tune's trained layers. */
const TENSORS = 20;

export interface IncrementalSummary {
  readonly incremental_state_dict_bytes: number;
  /** Interleaved rounds of (full, 10 %, 0 %) saves; the times are their medians. */
  readonly incremental_rounds: number;
  /** 1-minute load average before the first round and after each (the machine may be shared). */
  readonly incremental_load_average: readonly number[];
  readonly incremental_full_save_s: number;
  readonly incremental_first_save_s: number;
  readonly incremental_hash_s: number;
  /** XXH64 over the whole state dict (one core): what finding unchanged pieces costs (src/redis/piece-cache.ts). */
  readonly incremental_xxh64_s: number;
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

const loadAverage = (): number => Number(loadavg()[0]!.toFixed(2));

/**
 * `rounds` interleaved rounds of (full save, incremental save with 10 % new bytes, incremental
 * save with 0 % new): each round's changed tensors get a new version, so its 10 % are really new;
 * the figures are the medians, so a burst of load from other jobs moves one round, not the result.
 */
export async function incrementalFigures(redis: Redis, prefix: string, bytes: number, note: (text: string) => void, rounds = 3): Promise<IncrementalSummary> {
  const catalog = new CheckpointCatalog({ redis, prefix });
  const writer = (incremental: boolean) => new RedisStorageWriter({ redis, prefix, incremental });
  const base = stateDict(bytes, () => 0);
  const logical = Object.values(base).reduce<number>((n, t) => n + (t as Tensor).bytes.byteLength, 0);
  const load = [loadAverage()];
  const ids: string[] = [];
  const saveAs = async (id: string, sd: StateDict, incremental: boolean) => {
    ids.push(id);
    return timed(() => save(sd, { checkpointId: id, storageWriter: writer(incremental) }));
  };
  try {
    // Warm-up (JIT, connections), then every save is measured against a Redis that has its memory.
    await save(base, { checkpointId: 'inc/warm', storageWriter: writer(false) });
    await catalog.delete('inc/warm');
    const first = await saveAs('inc/0', base, true);
    let hash = Infinity;
    for (let r = 0; r < 3; r++) hash = Math.min(hash, await timed(async () => Object.values(base).forEach((t) => pieceHash((t as Tensor).bytes))));
    let fast = Infinity;
    for (let r = 0; r < 3; r++) fast = Math.min(fast, await timed(async () => Object.values(base).forEach((t) => xxh64(Buffer.from((t as Tensor).bytes.buffer, (t as Tensor).bytes.byteOffset, (t as Tensor).bytes.byteLength)))));
    const fulls: number[] = [];
    const tens: number[] = [];
    const zeros: number[] = [];
    let stored10 = 0;
    let stored0 = 0;
    for (let r = 1; r <= rounds; r++) {
      fulls.push(await saveAs(`inc/full-${r}`, base, false));
      await catalog.delete(`inc/full-${r}`);
      const tenth = stateDict(bytes, (i) => (i < TENSORS / 10 ? r : 0));
      tens.push(await saveAs(`inc/10-${r}`, tenth, true));
      stored10 = Math.max(stored10, (await catalog.get(`inc/10-${r}`)).storedBytes);
      zeros.push(await saveAs(`inc/00-${r}`, tenth, true));
      stored0 = Math.max(stored0, (await catalog.get(`inc/00-${r}`)).storedBytes);
      load.push(loadAverage());
      note(`round ${r}: full ${fulls.at(-1)!.toFixed(2)} s, 10 % ${(fulls.at(-1)! / tens.at(-1)!).toFixed(1)}x, 0 % ${(fulls.at(-1)! / zeros.at(-1)!).toFixed(1)}x, load ${load.at(-1)}`);
    }
    const [full, ten, zero] = [median(fulls), median(tens), median(zeros)];
    const s = {
      incremental_state_dict_bytes: logical,
      incremental_rounds: rounds,
      incremental_load_average: load,
      incremental_full_save_s: full,
      incremental_first_save_s: first,
      incremental_hash_s: hash,
      incremental_xxh64_s: fast,
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
    for (const id of new Set(ids)) await catalog.delete(id).catch(() => false);
    await catalog.close();
  }
}

export function printIncrementalTable(s: IncrementalSummary): void {
  const mark = (name: string) => (s.incremental_targets[name]!.met ? 'met' : 'MISSED');
  const lines = [
    '',
    `incremental saves (1 rank, ${(s.incremental_state_dict_bytes / MIB).toFixed(0)} MiB in ${TENSORS} tensors, steady Redis; medians of ${s.incremental_rounds} interleaved rounds; load average ${s.incremental_load_average.join(' / ')})`,
    `  full save (not incremental)        ${s.incremental_full_save_s.toFixed(3)} s`,
    `  first incremental save (all new)   ${s.incremental_first_save_s.toFixed(3)} s; BLAKE3 of the state dict ${s.incremental_hash_s.toFixed(3)} s = ${s.incremental_hash_cost_ratio.toFixed(3)} of the full save (target < 0.15: ${mark('incremental_hash_cost_ratio')}); XXH64 (unchanged pieces) ${s.incremental_xxh64_s.toFixed(3)} s`,
    `  10 % changed                       ${s.incremental_10pct_save_s.toFixed(3)} s, ${s.incremental_10pct_save_gbps.toFixed(2)} GB/s logical, ${s.incremental_10pct_speedup.toFixed(1)}x (target >= 5: ${mark('incremental_10pct_speedup')}), stored ratio ${s.incremental_10pct_stored_ratio.toFixed(3)} (target <= 0.12: ${mark('incremental_10pct_stored_ratio')})`,
    `  0 % changed                        ${s.incremental_0pct_save_s.toFixed(3)} s, ${s.incremental_0pct_save_gbps.toFixed(2)} GB/s logical, ${s.incremental_0pct_speedup.toFixed(1)}x (target >= 10: ${mark('incremental_0pct_speedup')}), stored ratio ${s.incremental_0pct_stored_ratio.toFixed(3)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
