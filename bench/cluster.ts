/**
 * Redis Cluster against standalone in `npm run bench` (issue 15): the same 1-rank save and
 * load (--bytes, default 1 GiB; --quick 32 MiB; 16 tensors, warm destination) in this
 * process, on the bench's standalone redis-server and on a local 3-master cluster (each
 * master its own redis-server). Phase 1 pairs them: each round a standalone save + load + re-load
 * and a cluster save + load + re-load, the order alternating, nothing else in between (the first
 * load reads bytes nobody has read yet, as a restart does; the re-load reads them again); the ratios are
 * medians of the rounds' own ratios (the host's CPU steal moves whole rounds, not one side).
 * Phase 2: the cluster through ioredis (bulkTransport off: how Cluster moved data before
 * per-master bulk connections) and saves with segment recycling on both. Each save overwrites
 * one checkpoint (steady state); each load is checked byte for byte. CPU steal and the load
 * average are recorded. See docs/performance.md, "Redis Cluster" and "Session 6".
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Cluster, Redis } from 'ioredis';
import { load } from '../src/core/load.js';
import { save } from '../src/core/save.js';
import { Tensor } from '../src/core/tensor.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { RedisStorageReader } from '../src/redis/reader.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { RedisClusterFixture } from '../test/helpers/redis-server.js';
import { median } from './report.js';

export interface ClusterFigures {
  readonly cluster: {
    readonly state_dict_bytes: number;
    readonly rounds: number;
    readonly masters: number;
    readonly standalone_save_gbps: number;
    readonly standalone_load_gbps: number;
    readonly cluster_save_gbps: number;
    readonly cluster_load_gbps: number;
    /** The cluster with bulkTransport off (ioredis moves the bytes). */
    readonly cluster_ioredis_save_gbps: number;
    readonly cluster_ioredis_load_gbps: number;
    /** Saves with segment recycling (recycleTtlMs): each writes over the previous round's pooled segments. */
    readonly standalone_recycled_save_gbps: number;
    readonly cluster_recycled_save_gbps: number;
    /** The first load after each recycling save (the CheckpointManager's default), and the median of those rounds' cluster ÷ standalone. */
    readonly standalone_recycled_load_gbps: number;
    readonly cluster_recycled_load_gbps: number;
    readonly recycled_load_ratio: number;
    /** Medians of the paired rounds' own ratios (cluster ÷ standalone, phase 1). */
    readonly save_ratio: number;
    /** The first load of a just-saved checkpoint (what a restart meets: no one has read its bytes yet). */
    readonly load_ratio: number;
    /** Each paired round's load ratio, in order. */
    readonly load_ratios: readonly number[];
    /** The same checkpoint loaded a second time in the round (its bytes read once already: an evaluation loop's re-load). */
    readonly standalone_reload_gbps: number;
    readonly cluster_reload_gbps: number;
    readonly reload_ratio: number;
    readonly reload_ratios: readonly number[];
    /** Paired rounds (phase 1); `rounds` is the rounds of phase 2. */
    readonly paired_rounds: number;
    /** Share of all CPU time the host took (steal, /proc/stat) during phase 1; undefined where not readable. */
    readonly steal_fraction?: number;
    /** 1-minute load average before and after the part. */
    readonly loadavg: readonly [number, number];
  };
}

const PARTS = 16;

export async function clusterFigures(standalone: Redis, prefix: string, bytes: number, rounds: number, note: (text: string) => void): Promise<ClusterFigures> {
  const loadBefore = loadavg()[0]!;
  const part = Math.floor(bytes / PARTS);
  const total = part * PARTS;
  const source = Object.fromEntries(Array.from({ length: PARTS }, (_, i) => [`layer${i}`, new Tensor('uint8', [part], new Uint8Array(part).fill(i + 1))]));
  const dest = Object.fromEntries(Array.from({ length: PARTS }, (_, i) => [`layer${i}`, new Tensor('uint8', [part], new Uint8Array(part).fill(0xff))]));
  const pairedRounds = Math.max(rounds, rounds > 1 ? 7 : 1);
  note(`redis cluster: starting 3 masters; ${pairedRounds} paired rounds of a ${(total / 2 ** 20).toFixed(0)} MiB save + load on standalone and cluster, then ${rounds} rounds of the cluster via ioredis and of recycling saves`);
  const fixture = await RedisClusterFixture.start(3);
  const cluster = fixture.client();
  const id = 'run/cluster-cmp';
  const once = async (redis: Redis | Cluster, bulkTransport: boolean, recycleTtlMs = 0): Promise<Run> => {
    // A recycling save overwrites its own checkpoint: the replaced save's segments go into the pool the next round takes.
    const checkpointId = recycleTtlMs > 0 ? `${id}-recycled` : id;
    let began = performance.now();
    await save(source, { checkpointId, storageWriter: new RedisStorageWriter({ redis, prefix, bulkTransport, recycleTtlMs }) });
    const saveS = (performance.now() - began) / 1000;
    const loadS = await loadChecked(redis, bulkTransport, checkpointId);
    return { save: total / saveS / 1e9, load: total / loadS / 1e9 };
  };
  /** Phase 1: a save, its load, and a second load of the same checkpoint (the server has read these bytes once already). */
  const paired = async (redis: Redis | Cluster): Promise<Paired> => ({ ...(await once(redis, true)), reload: total / (await loadChecked(redis, true, id)) / 1e9 });
  const loadChecked = async (redis: Redis | Cluster, bulkTransport: boolean, checkpointId: string): Promise<number> => {
    for (const t of Object.values(dest)) t.bytes.fill(0xff);
    const reader = new RedisStorageReader({ redis, prefix, bulkTransport });
    const began = performance.now();
    await load(dest, { checkpointId, storageReader: reader });
    const seconds = (performance.now() - began) / 1000;
    await reader.close();
    for (const [name, t] of Object.entries(dest)) {
      if (Buffer.compare(view(t.bytes), view(source[name]!.bytes)) !== 0) throw new Error(`cluster bench: ${name} loaded wrong bytes`);
    }
    return seconds;
  };
  type Run = { save: number; load: number };
  type Paired = Run & { reload: number };
  const runs = { standalone: [] as Paired[], cluster: [] as Paired[], ioredis: [] as Run[], standaloneRecycled: [] as Run[], clusterRecycled: [] as Run[] };
  const RECYCLE_TTL = 10 * 60_000;
  let steal: number | undefined;
  try {
    await once(standalone, true); // warm-up: the first save of a process allocates what later ones reuse
    await once(cluster, true);
    const cpu0 = cpuTimes();
    for (let r = 0; r < pairedRounds; r++) {
      // Alternating order: whatever a save leaves behind (freed memory, the host's mood) falls on each side alike.
      if (r % 2 === 0) {
        runs.standalone.push(await paired(standalone));
        runs.cluster.push(await paired(cluster));
      } else {
        runs.cluster.push(await paired(cluster));
        runs.standalone.push(await paired(standalone));
      }
      const [sa, cl] = [runs.standalone.at(-1)!, runs.cluster.at(-1)!];
      note(`  paired round ${r + 1}: standalone ${fmt(sa)} (re-load ${sa.reload.toFixed(2)}), cluster ${fmt(cl)} (re-load ${cl.reload.toFixed(2)}); load ratio ${(cl.load / sa.load).toFixed(2)}, re-load ${(cl.reload / sa.reload).toFixed(2)}`);
    }
    const cpu1 = cpuTimes();
    if (cpu0 && cpu1) steal = (cpu1.steal - cpu0.steal) / Math.max(1, cpu1.total - cpu0.total);
    // Fill the pools: the first recycling save has nothing to replace, the second pools the first's segments.
    for (let i = 0; i < 2; i++) {
      await once(standalone, true, RECYCLE_TTL);
      await once(cluster, true, RECYCLE_TTL);
    }
    for (let r = 0; r < rounds; r++) {
      runs.ioredis.push(await once(cluster, false));
      runs.standaloneRecycled.push(await once(standalone, true, RECYCLE_TTL));
      runs.clusterRecycled.push(await once(cluster, true, RECYCLE_TTL));
      note(`  round ${r + 1}: cluster via ioredis ${fmt(runs.ioredis.at(-1)!)}; recycling: standalone ${fmt(runs.standaloneRecycled.at(-1)!)}, cluster ${fmt(runs.clusterRecycled.at(-1)!)}`);
    }
    const catalog = new CheckpointCatalog({ redis: standalone, prefix });
    await catalog.delete(id);
    await catalog.delete(`${id}-recycled`);
    await standalone.unlink(...(await standalone.smembers(`${prefix}:pool`)), `${prefix}:pool`);
  } finally {
    await fixture.stop();
  }
  const m = <T extends Run>(xs: T[], k: keyof T & string) => median(xs.map((x) => x[k] as number));
  const figures = {
    state_dict_bytes: total,
    rounds,
    masters: 3,
    standalone_save_gbps: m(runs.standalone, 'save'),
    standalone_load_gbps: m(runs.standalone, 'load'),
    cluster_save_gbps: m(runs.cluster, 'save'),
    cluster_load_gbps: m(runs.cluster, 'load'),
    cluster_ioredis_save_gbps: m(runs.ioredis, 'save'),
    cluster_ioredis_load_gbps: m(runs.ioredis, 'load'),
    standalone_recycled_save_gbps: m(runs.standaloneRecycled, 'save'),
    cluster_recycled_save_gbps: m(runs.clusterRecycled, 'save'),
    standalone_recycled_load_gbps: m(runs.standaloneRecycled, 'load'),
    cluster_recycled_load_gbps: m(runs.clusterRecycled, 'load'),
    recycled_load_ratio: median(runs.clusterRecycled.map((c, i) => c.load / runs.standaloneRecycled[i]!.load)),
    save_ratio: median(runs.cluster.map((c, i) => c.save / runs.standalone[i]!.save)),
    load_ratio: median(runs.cluster.map((c, i) => c.load / runs.standalone[i]!.load)),
    load_ratios: runs.cluster.map((c, i) => c.load / runs.standalone[i]!.load),
    standalone_reload_gbps: m(runs.standalone, 'reload'),
    cluster_reload_gbps: m(runs.cluster, 'reload'),
    reload_ratio: median(runs.cluster.map((c, i) => c.reload / runs.standalone[i]!.reload)),
    reload_ratios: runs.cluster.map((c, i) => c.reload / runs.standalone[i]!.reload),
    paired_rounds: pairedRounds,
    ...(steal === undefined ? {} : { steal_fraction: steal }),
    loadavg: [loadBefore, loadavg()[0]!] as const,
  };
  return { cluster: figures };
}

const fmt = (x: { save: number; load: number }) => `${x.save.toFixed(2)}/${x.load.toFixed(2)} GB/s`;

export function printClusterTable({ cluster: c }: ClusterFigures): void {
  const row = (name: string, save: number, load: number) => `| ${name} | ${save.toFixed(2)} | ${load.toFixed(2)} |`;
  process.stdout.write(
    [
      `\nRedis Cluster vs standalone (${(c.state_dict_bytes / 2 ** 20).toFixed(0)} MiB, 1 rank; medians of ${c.paired_rounds} paired rounds, ${c.rounds} for the variants; load average ${c.loadavg[0].toFixed(1)} → ${c.loadavg[1].toFixed(1)}${c.steal_fraction === undefined ? '' : `; host CPU steal ${(100 * c.steal_fraction).toFixed(0)} %`})`,
      '| | save GB/s | load GB/s |',
      '|---|---|---|',
      row('standalone', c.standalone_save_gbps, c.standalone_load_gbps),
      row(`cluster, ${c.masters} masters (bulk per master)`, c.cluster_save_gbps, c.cluster_load_gbps),
      row('cluster via ioredis (bulkTransport: false)', c.cluster_ioredis_save_gbps, c.cluster_ioredis_load_gbps),
      `| cluster / standalone, median of paired rounds (target ≥ 0.8) | ${c.save_ratio.toFixed(2)} | ${c.load_ratio.toFixed(2)} |`,
      `| load ratio per paired round | | ${c.load_ratios.map((r) => r.toFixed(2)).join(' ')} |`,
      `| the same checkpoint loaded again (its bytes read once): standalone / cluster GB/s | | ${c.standalone_reload_gbps.toFixed(2)} / ${c.cluster_reload_gbps.toFixed(2)} |`,
      `| re-load cluster / standalone, median of paired rounds (rounds: ${c.reload_ratios.map((r) => r.toFixed(2)).join(' ')}) | | ${c.reload_ratio.toFixed(2)} |`,
      `| with segment recycling (the CheckpointManager's default): standalone / cluster | ${c.standalone_recycled_save_gbps.toFixed(2)} / ${c.cluster_recycled_save_gbps.toFixed(2)} | ${c.standalone_recycled_load_gbps.toFixed(2)} / ${c.cluster_recycled_load_gbps.toFixed(2)} |`,
      `| recycling: load cluster / standalone, median of the rounds | | ${c.recycled_load_ratio.toFixed(2)} |`,
      'which applies: a restart after plain saves loads bytes nobody has read yet (the first load: the target row); loading the same checkpoint again (evaluation, a retry) meets the re-load; saves that recycle segments (the CheckpointManager) leave bytes in memory Redis has used before: the recycling row.',
      '',
    ].join('\n'),
  );
}

/** Whole-machine CPU ticks and the host's steal share of them (Linux /proc/stat), or undefined elsewhere. */
function cpuTimes(): { total: number; steal: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.slice(0, 8).reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return undefined;
  }
}

const view = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
