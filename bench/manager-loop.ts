/**
 * The CheckpointManager loop of `npm run bench` (issue 12): N saves of one state dict
 * (default 50 × 64 MiB of distinct bytes, one piece (a segment, 1 MiB − 64 B by default) changing per step; --quick 8 × 8 MiB)
 * with keepLast 2, in three modes: whole saves (incremental off, recycling off), whole saves with
 * segment recycling, and the manager's default (incremental). Per mode: steady save GB/s (median of the
 * saves after the first 3), Redis used_memory over the loop (max, and its ratio to the state
 * dict; target ≤ 3 × state dict + pool) and retention time per save. See docs/performance.md.
 */
import { Tensor } from '../src/core/tensor.js';
import { CheckpointManager } from '../src/manager/manager.js';
import { redisMemory } from '../src/redis/memory.js';
import { pooledSegments } from '../src/redis/segment-pool.js';
import { KeySpace } from '../src/redis/keys.js';
import type { RedisTarget } from './redis-target.js';
import { median } from './report.js';

export type LoopMode = 'plain' | 'recycling' | 'incremental';
const WRITER_OPTIONS: Record<LoopMode, { incremental?: boolean; recycleTtlMs?: number }> = {
  plain: { incremental: false, recycleTtlMs: 0 },
  recycling: { incremental: false },
  incremental: {},
};

export interface ManagerLoopMode {
  readonly mode: LoopMode;
  readonly recycling: boolean;
  readonly steps: number;
  readonly save_gbps_median: number;
  readonly used_memory_start_bytes: number;
  readonly used_memory_max_bytes: number;
  /** (max used − start) / state dict bytes. */
  readonly used_memory_max_ratio: number;
  readonly pooled_bytes_max: number;
  readonly retention_ms_median: number;
  readonly retention_ms_max: number;
}

export interface ManagerLoopFigures {
  readonly manager_loop: { readonly state_dict_bytes: number; readonly keep_last: number; readonly modes: ManagerLoopMode[] };
}


/** Distinct bytes (a constant fill would be one piece to an incremental save). */
function filled(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

async function loop(target: RedisTarget, prefix: string, run: string, bytes: number, steps: number, mode: LoopMode): Promise<ManagerLoopMode> {
  const tensors = Array.from({ length: 16 }, (_, i) => new Tensor('uint8', [bytes / 16], filled(bytes / 16, i + 1)));
  const manager = new CheckpointManager({ redis: target.redis, prefix, run, retention: { keepLast: 2 }, writerOptions: WRITER_OPTIONS[mode] });
  const start = (await redisMemory(target.redis)).usedMemory;
  const gbps: number[] = [];
  const retention: number[] = [];
  let maxUsed = start;
  let maxPool = 0;
  try {
    for (let step = 1; step <= steps; step++) {
      tensors[0]!.bytes[0] = step % 256;
      const sd = Object.fromEntries(tensors.map((t, i) => [`layer${i}`, t]));
      const began = performance.now();
      const result = await manager.save(step, sd, { metrics: { loss: 1 / step } });
      const totalS = (performance.now() - began) / 1000;
      const saveS = totalS - result.retentionMs / 1000;
      if (step > 3) gbps.push(bytes / 1e9 / saveS);
      retention.push(result.retentionMs);
      maxUsed = Math.max(maxUsed, (await redisMemory(target.redis)).usedMemory);
      maxPool = Math.max(maxPool, (await pooledSegments(target.redis, new KeySpace(prefix))).bytes);
    }
    for (const step of await manager.steps()) await manager.delete(step);
  } finally {
    await manager.close();
  }
  return {
    mode,
    recycling: mode === 'recycling',
    steps,
    save_gbps_median: median(gbps),
    used_memory_start_bytes: start,
    used_memory_max_bytes: maxUsed,
    used_memory_max_ratio: (maxUsed - start) / bytes,
    pooled_bytes_max: maxPool,
    retention_ms_median: median(retention),
    retention_ms_max: Math.max(...retention),
  };
}

export async function managerLoopFigures(target: RedisTarget, prefix: string, quick: boolean, note: (text: string) => void): Promise<ManagerLoopFigures> {
  const bytes = (quick ? 8 : 64) * 2 ** 20;
  const steps = quick ? 8 : 50;
  const modes: ManagerLoopMode[] = [];
  for (const mode of ['plain', 'recycling', 'incremental'] as const) {
    note(`manager loop: ${steps} saves of ${bytes / 2 ** 20} MiB, keepLast 2, ${mode}${mode === 'incremental' ? ' (the default)' : ''}`);
    modes.push(await loop(target, prefix, `bench-manager-${mode}`, bytes, steps, mode));
  }
  return { manager_loop: { state_dict_bytes: bytes, keep_last: 2, modes } };
}

export function printManagerTable(f: ManagerLoopFigures): void {
  const m = f.manager_loop;
  console.log(`\nCheckpointManager loop (${m.modes[0]?.steps} saves × ${(m.state_dict_bytes / 2 ** 20).toFixed(0)} MiB, keepLast ${m.keep_last})`);
  console.log('mode         save GB/s (median)  used_memory max − start  ratio  pool max  retention ms (median / max)');
  for (const r of m.modes) {
    console.log(`${r.mode.padEnd(11)}  ${r.save_gbps_median.toFixed(2).padStart(18)}  ${((r.used_memory_max_bytes - r.used_memory_start_bytes) / 2 ** 20).toFixed(0).padStart(19)} MiB  ${r.used_memory_max_ratio.toFixed(2).padStart(5)}  ${(r.pooled_bytes_max / 2 ** 20).toFixed(0).padStart(4)} MiB  ${r.retention_ms_median.toFixed(1)} / ${r.retention_ms_max.toFixed(1)}`);
  }
}
