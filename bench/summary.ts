/**
 * The benchmark's figures as one JSON object (snake_case, the field names of issue 6)
 * and the table printed on stdout from it.
 */
import type { BenchOptions } from './args.js';
import type { ApiFigures } from './admin-api.js';
import type { SweepPoint } from './baselines.js';
import { growthRatio, type ScalePoint } from './metadata-scale.js';
import { RSS_TARGET, type RanksFigure } from './ranks.js';
import { fmtBytes, fmtNum, table } from './report.js';
import type { Layout } from './synthetic.js';

export interface RawFigures {
  readonly setGbps: number;
  readonly getGbps: number;
  readonly setChunkBytes: number;
  readonly setConcurrency: number;
  readonly getChunkBytes: number;
  readonly getConcurrency: number;
  /** Raw GET in a warm, long-lived process (its second read of the same keys; a trainer loading into existing tensors) and its best setting. */
  readonly getWarmGbps: number;
  readonly getWarmChunkBytes: number;
  readonly getWarmConcurrency: number;
  /** used_memory growth / payload bytes for the raw SET. */
  readonly memoryOverhead: number;
  readonly verified: boolean;
  /** The same SET/GET over a zero-copy RESP socket (bench/resp-socket.ts): what a bulk transport could reach. */
  readonly socketSetGbps: number;
  readonly socketGetGbps: number;
  readonly sweep: readonly SweepPoint[];
}

export interface RankCountFigures {
  readonly worldSize: number;
  readonly save: RanksFigure;
  readonly load: RanksFigure;
  /** used_memory growth of the save / state dict bytes. */
  readonly memoryOverhead: number;
}

export interface ConditionFigures {
  readonly raw: RawFigures;
  readonly fsWrite: number;
  readonly fsRead: number;
  readonly ranks: readonly RankCountFigures[];
}

export interface SummaryInput {
  readonly opts: BenchOptions;
  readonly layout: Layout;
  readonly machine: { cpus: number; node: string; redis: string; date: string };
  readonly steady: ConditionFigures;
  readonly cold: ConditionFigures | undefined;
  readonly fsWriteFsyncGbps: number;
  /** Peak RSS of a worker process that loaded the modules and connected, before any work. */
  readonly workerIdleRssBytes: number;
  /** How rank processes ran: compiled JavaScript (`npm run bench`) or through tsx. */
  readonly workerRuntime: 'node' | 'tsx';
  readonly loopbackSocketGbps: number;
  /** 1-rank steady save and load through the server's unix socket instead of TCP (own server only). */
  readonly unixSocket?: RankCountFigures | undefined;
  /** 1-rank steady save and load with segment recycling on (recycleTtlMs). */
  readonly recycled?: RankCountFigures | undefined;
  /** Interleaved headline rounds (raw, then library, 1 rank, steady); the headline figures are their medians. */
  readonly rounds?: ReadonlyArray<{ raw_set_gbps: number; raw_get_gbps: number; raw_get_warm_gbps: number; save_gbps: number; load_gbps: number }> | undefined;
  readonly reshard: { savedBy: number; loadedBy: number; figure: RanksFigure } | undefined;
  readonly redisBenchmark: { valueBytes: number; requests: number; cold: { setGbps: number; getGbps: number }; steady: { setGbps: number; getGbps: number } } | undefined;
  readonly scale: readonly ScalePoint[];
  readonly api: ApiFigures | undefined;
}

export type Summary = Record<string, unknown> & {
  state_dict_bytes: number;
  save_gbps: number;
  load_gbps: number;
};

/** The rank count whose figures are the headline ones: 1 rank (one client, like the raw baseline). */
function headline(c: ConditionFigures): RankCountFigures {
  return c.ranks.find((r) => r.worldSize === 1) ?? c.ranks[0]!;
}

function conditionFields(c: ConditionFigures, p: '' | 'cold_'): Record<string, unknown> {
  const h = headline(c);
  return {
    [`${p}save_gbps`]: h.save.gbps,
    [`${p}load_gbps`]: h.load.gbps,
    [`${p}raw_set_gbps`]: c.raw.setGbps,
    [`${p}raw_get_gbps`]: c.raw.getGbps,
    [`${p}raw_get_warm_gbps`]: c.raw.getWarmGbps,
    [`${p}fs_write_gbps`]: c.fsWrite,
    [`${p}fs_read_gbps`]: c.fsRead,
    [`${p}save_peak_rss_bytes`]: h.save.peakRssBytes,
    [`${p}load_peak_rss_bytes`]: h.load.peakRssBytes,
    [`${p}redis_memory_overhead`]: h.memoryOverhead,
    [`${p}raw_memory_overhead`]: c.raw.memoryOverhead,
    [`${p}socket_set_gbps`]: c.raw.socketSetGbps,
    [`${p}socket_get_gbps`]: c.raw.socketGetGbps,
    [`${p}save_vs_raw_set`]: h.save.gbps / c.raw.setGbps,
    // The load ratio is against the raw GET in a warm process (a trainer loading into its tensors); the fresh-process one is kept beside it.
    [`${p}load_vs_raw_get`]: h.load.gbps / c.raw.getWarmGbps,
    [`${p}load_vs_raw_get_fresh`]: h.load.gbps / c.raw.getGbps,
    [`${p}save_vs_fs_write`]: h.save.gbps / c.fsWrite,
    [`${p}load_vs_fs_read`]: h.load.gbps / c.fsRead,
    [`${p}load_verified`]: c.ranks.every((r) => r.load.verified === true),
    [`${p}raw_get_verified`]: c.raw.verified,
  };
}

function stepsOfRank0(f: RanksFigure): Record<string, number> {
  const r0 = f.ranks.find((r) => r.rank === 0);
  return { ...(r0?.steps ?? {}), ...(r0?.beforeDataMs !== undefined ? { before_data: r0.beforeDataMs } : {}) };
}

function rankCountFields(steady: RankCountFigures, cold: RankCountFigures | undefined): Record<string, unknown> {
  const side = (f: RankCountFigures, p: '' | 'cold_') => ({
    [`${p}save_gbps`]: f.save.gbps,
    [`${p}load_gbps`]: f.load.gbps,
    [`${p}save_seconds`]: f.save.seconds,
    [`${p}load_seconds`]: f.load.seconds,
    [`${p}save_peak_rss_bytes`]: f.save.peakRssBytes,
    [`${p}load_peak_rss_bytes`]: f.load.peakRssBytes,
    [`${p}rss_within_target`]: f.save.rssWithinTarget && f.load.rssWithinTarget,
    [`${p}load_verified`]: f.load.verified === true,
    [`${p}load_verified_bytes`]: f.load.verifiedBytes,
    [`${p}redis_memory_overhead`]: f.memoryOverhead,
    [`${p}save_steps_ms`]: stepsOfRank0(f.save),
    [`${p}load_steps_ms`]: stepsOfRank0(f.load),
  });
  return {
    ranks: steady.worldSize,
    rank_state_dict_bytes: steady.save.peakRssRankBytes,
    rss_target_bytes: RSS_TARGET(steady.save.peakRssRankBytes),
    ...side(steady, ''),
    ...(cold ? side(cold, 'cold_') : {}),
  };
}

export function buildSummary(input: SummaryInput): Summary {
  const { steady, cold, layout } = input;
  const h = headline(steady);
  const hc = cold ? headline(cold) : undefined;
  const rssTarget = RSS_TARGET(layout.totalBytes);
  const target = (value: number | undefined, goal: number, atLeast = true) => ({ target: goal, value: value ?? null, met: value === undefined ? null : atLeast ? value >= goal : value <= goal });
  const scaleGrowth = input.scale.length > 1 ? growthRatio(input.scale) : null;
  const summary: Summary = {
    state_dict_bytes: layout.totalBytes,
    save_gbps: h.save.gbps,
    load_gbps: h.load.gbps,
    ...conditionFields(steady, ''),
    ...(cold ? conditionFields(cold, 'cold_') : {}),
    peak_rss_target_bytes: rssTarget,
    worker_idle_rss_bytes: input.workerIdleRssBytes,
    worker_runtime: input.workerRuntime,
    headline_rounds: input.rounds ?? null,
    recycled: input.recycled
      ? {
          save_gbps: input.recycled.save.gbps,
          load_gbps: input.recycled.load.gbps,
          save_vs_raw_set: input.recycled.save.gbps / steady.raw.setGbps,
          save_vs_fs_write: input.recycled.save.gbps / steady.fsWrite,
          load_verified: input.recycled.load.verified === true,
        }
      : null,
    unix_socket: input.unixSocket
      ? {
          save_gbps: input.unixSocket.save.gbps,
          load_gbps: input.unixSocket.load.gbps,
          save_vs_fs_write: input.unixSocket.save.gbps / steady.fsWrite,
          load_vs_fs_read: input.unixSocket.load.gbps / steady.fsRead,
          load_verified: input.unixSocket.load.verified === true,
        }
      : null,
    per_rank_count: steady.ranks.map((r) => rankCountFields(r, cold?.ranks.find((c) => c.worldSize === r.worldSize))),
    reshard: input.reshard
      ? {
          saved_by: input.reshard.savedBy,
          loaded_by: input.reshard.loadedBy,
          load_gbps: input.reshard.figure.gbps,
          load_seconds: input.reshard.figure.seconds,
          load_peak_rss_bytes: input.reshard.figure.peakRssBytes,
          load_verified: input.reshard.figure.verified === true,
        }
      : null,
    items_scale: input.scale.map((p) => ({
      items: p.items,
      plan_ms: p.planMs,
      write_ms: p.writeMs,
      commit_ms: p.commitMs,
      save_ms: p.saveMs,
      load_plan_ms: p.loadPlanMs,
      load_ms: p.loadMs,
      plan_commit_ms_per_1k_items: p.planCommitMsPer1k,
      verified: p.verified,
    })),
    items_scale_growth_ratio: scaleGrowth,
    api: input.api ? apiFields(input.api) : null,
    raw: {
      set_chunk_bytes: steady.raw.setChunkBytes,
      set_concurrency: steady.raw.setConcurrency,
      get_chunk_bytes: steady.raw.getChunkBytes,
      get_concurrency: steady.raw.getConcurrency,
      get_warm_chunk_bytes: steady.raw.getWarmChunkBytes,
      get_warm_concurrency: steady.raw.getWarmConcurrency,
      sweep: steady.raw.sweep.map((p) => ({ chunk_bytes: p.chunkBytes, concurrency: p.concurrency, set_gbps: p.setGbps, get_gbps: p.getGbps })),
    },
    redis_benchmark: input.redisBenchmark
      ? {
          value_bytes: input.redisBenchmark.valueBytes,
          requests: input.redisBenchmark.requests,
          set_gbps: input.redisBenchmark.steady.setGbps,
          get_gbps: input.redisBenchmark.steady.getGbps,
          cold_set_gbps: input.redisBenchmark.cold.setGbps,
          cold_get_gbps: input.redisBenchmark.cold.getGbps,
        }
      : null,
    fs_write_fsync_gbps: input.fsWriteFsyncGbps,
    loopback_socket_gbps: input.loopbackSocketGbps,
    targets: {
      save_vs_raw_set: target(h.save.gbps / steady.raw.setGbps, 0.9),
      load_vs_raw_get: target(h.load.gbps / steady.raw.getWarmGbps, 0.9),
      cold_save_vs_raw_set: target(hc && cold ? hc.save.gbps / cold.raw.setGbps : undefined, 0.9),
      cold_load_vs_raw_get: target(hc && cold ? hc.load.gbps / cold.raw.getWarmGbps : undefined, 0.9),
      save_vs_fs_write: target(h.save.gbps / steady.fsWrite, 1),
      load_vs_fs_read: target(h.load.gbps / steady.fsRead, 1),
      save_peak_rss_bytes: target(h.save.peakRssBytes, rssTarget, false),
      load_peak_rss_bytes: target(h.load.peakRssBytes, rssTarget, false),
      redis_memory_overhead: target(h.memoryOverhead, 1.02, false),
      items_scale_growth_ratio: target(scaleGrowth ?? undefined, 1.5, false),
      // Measured beside a save when the run did (issue 15); alone otherwise.
      list_page_p99_ms: target(input.api?.beside?.listPageP99Ms ?? input.api?.listPageP99Ms, 20, false),
      // The same beside saves that recycle (the CheckpointManager's default), when measured.
      list_page_p99_ms_beside_recycling_save: target(input.api?.besideRecycling?.listPageP99Ms, 20, false),
    },
    machine: input.machine,
    options: {
      bytes: input.opts.bytes,
      items: input.opts.items,
      ranks: input.opts.ranks,
      quick: input.opts.quick,
      redis_url: input.opts.redisUrl ? '(given)' : null,
      scale_items: input.opts.scaleItems,
      catalog_entries: input.opts.catalogEntries,
      layout: {
        large_tensors: layout.large.map((t) => ({ fqn: t.fqn, shape: [t.rows, t.cols], dtype: 'float32' })),
        small_tensors: layout.small.length,
        bytes_items: layout.blobs.length,
      },
    },
  };
  return summary;
}

const gbps = (v: unknown) => fmtNum(v as number, 2);
const ratio = (v: unknown) => fmtNum(v as number, 2, '×');

export function printTable(s: Summary): void {
  const out: string[] = [];
  const m = s.machine as SummaryInput['machine'];
  out.push(`redis-dcp benchmark: ${fmtBytes(s.state_dict_bytes)} state dict, Redis ${m.redis}, Node ${m.node}, ${m.cpus} CPUs, ${m.date}`);
  out.push('(GB/s = 1e9 bytes/s of unique state dict bytes; headline figures are 1 rank; numbers on a shared 2-core machine are noisy)\n');
  const c = (k: string) => s[`cold_${k}`];
  const raw = s.raw as { set_chunk_bytes: number; set_concurrency: number; get_chunk_bytes: number; get_concurrency: number; get_warm_chunk_bytes: number; get_warm_concurrency: number };
  const tg = s.targets as Record<string, { target: number; met: boolean | null }>;
  const mark = (k: string) => (tg[k]?.met === null || tg[k] === undefined ? '' : tg[k]!.met ? 'met' : 'NOT met');
  out.push(
    table([
      ['figure', 'steady', 'cold', 'target (steady)'],
      ['save GB/s', gbps(s.save_gbps), gbps(c('save_gbps')), ''],
      ['load GB/s', gbps(s.load_gbps), gbps(c('load_gbps')), ''],
      [`raw SET GB/s (${fmtBytes(raw.set_chunk_bytes)} × ${raw.set_concurrency})`, gbps(s.raw_set_gbps), gbps(c('raw_set_gbps')), ''],
      [`raw GET GB/s, warm process (${fmtBytes(raw.get_warm_chunk_bytes)} × ${raw.get_warm_concurrency})`, gbps(s.raw_get_warm_gbps), gbps(c('raw_get_warm_gbps')), ''],
      [`raw GET GB/s, fresh process (${fmtBytes(raw.get_chunk_bytes)} × ${raw.get_concurrency})`, gbps(s.raw_get_gbps), gbps(c('raw_get_gbps')), ''],
      ['zero-copy RESP socket SET GB/s', gbps(s.socket_set_gbps), gbps(c('socket_set_gbps')), ''],
      ['zero-copy RESP socket GET GB/s', gbps(s.socket_get_gbps), gbps(c('socket_get_gbps')), ''],
      ['fs write GB/s (page cache)', gbps(s.fs_write_gbps), gbps(c('fs_write_gbps')), ''],
      ['fs read GB/s', gbps(s.fs_read_gbps), gbps(c('fs_read_gbps')), ''],
      ['save / raw SET', ratio(s.save_vs_raw_set), ratio(c('save_vs_raw_set')), `≥ 0.90× ${mark('save_vs_raw_set')}`],
      ['load / raw GET (warm process)', ratio(s.load_vs_raw_get), ratio(c('load_vs_raw_get')), `≥ 0.90× ${mark('load_vs_raw_get')}`],
      ['load / raw GET (fresh process)', ratio(s.load_vs_raw_get_fresh), ratio(c('load_vs_raw_get_fresh')), ''],
      ['save / fs write', ratio(s.save_vs_fs_write), ratio(c('save_vs_fs_write')), `> 1× ${mark('save_vs_fs_write')}`],
      ['load / fs read', ratio(s.load_vs_fs_read), ratio(c('load_vs_fs_read')), `> 1× ${mark('load_vs_fs_read')}`],
      ['save peak RSS', fmtBytes(s.save_peak_rss_bytes as number), fmtBytes(c('save_peak_rss_bytes') as number), `≤ ${fmtBytes(s.peak_rss_target_bytes as number)} ${mark('save_peak_rss_bytes')}`],
      ['load peak RSS', fmtBytes(s.load_peak_rss_bytes as number), fmtBytes(c('load_peak_rss_bytes') as number), `≤ ${fmtBytes(s.peak_rss_target_bytes as number)} ${mark('load_peak_rss_bytes')}`],
      ['Redis used_memory growth / payload', fmtNum(s.redis_memory_overhead as number, 4), fmtNum(c('redis_memory_overhead') as number, 4), `≤ 1.02 ${mark('redis_memory_overhead')}`],
      ['raw SET used_memory growth / payload', fmtNum(s.raw_memory_overhead as number, 4), fmtNum(c('raw_memory_overhead') as number, 4), ''],
      ['loaded bytes verified', String(s.load_verified), String(c('load_verified') ?? '–'), ''],
    ]),
  );
  const rb = s.redis_benchmark as { value_bytes: number; set_gbps: number; get_gbps: number; cold_set_gbps: number; cold_get_gbps: number } | null;
  out.push('');
  out.push(`a worker process (${s.worker_runtime === 'tsx' ? 'node + tsx' : 'node, compiled JavaScript'} + modules, connected) idles at ${fmtBytes(s.worker_idle_rss_bytes as number)} RSS before any work`);
  const rounds = s.headline_rounds as Array<{ raw_set_gbps: number; raw_get_gbps: number; raw_get_warm_gbps: number; save_gbps: number; load_gbps: number }> | null;
  if (rounds) out.push(`steady headline = medians of ${rounds.length} interleaved rounds (raw SET / save / raw GET fresh / raw GET warm / load GB/s): ${rounds.map((r) => `${gbps(r.raw_set_gbps)} / ${gbps(r.save_gbps)} / ${gbps(r.raw_get_gbps)} / ${gbps(r.raw_get_warm_gbps)} / ${gbps(r.load_gbps)}`).join('; ')}`);
  out.push('which baseline applies: a trainer loading into tensors it already holds, in a process that has run a while, is the warm one (the load ratio above); a fresh process reading into new memory pays page faults on every reply, the fresh one');
  const recycled = s.recycled as { save_gbps: number; load_gbps: number; save_vs_raw_set: number; save_vs_fs_write: number; load_verified: boolean } | null;
  if (recycled) out.push(`with segment recycling (recycleTtlMs; 1 rank, steady): save ${gbps(recycled.save_gbps)} GB/s (${ratio(recycled.save_vs_raw_set)} raw SET, ${ratio(recycled.save_vs_fs_write)} fs write), load ${gbps(recycled.load_gbps)} GB/s, verified ${recycled.load_verified}`);
  const unix = s.unix_socket as { save_gbps: number; load_gbps: number; save_vs_fs_write: number; load_vs_fs_read: number; load_verified: boolean } | null;
  if (unix) out.push(`over the server's unix socket (1 rank, steady): save ${gbps(unix.save_gbps)} GB/s (${ratio(unix.save_vs_fs_write)} fs write), load ${gbps(unix.load_gbps)} GB/s (${ratio(unix.load_vs_fs_read)} fs read), verified ${unix.load_verified}`);
  out.push(`other ceilings: loopback socket ${gbps(s.loopback_socket_gbps)} GB/s; fs write with fsync ${gbps(s.fs_write_fsync_gbps)} GB/s` + (rb ? `; redis-benchmark -d ${rb.value_bytes}: SET ${gbps(rb.set_gbps)} / GET ${gbps(rb.get_gbps)} GB/s steady, SET ${gbps(rb.cold_set_gbps)} / GET ${gbps(rb.cold_get_gbps)} GB/s cold` : ''));

  out.push('\nper rank count (each rank a process; RedisProcessGroup)');
  const rows: string[][] = [['ranks', 'save GB/s', 'load GB/s', 'cold save', 'cold load', 'save RSS/rank', 'load RSS/rank', 'RSS target/rank', 'verified']];
  for (const r of s.per_rank_count as Record<string, unknown>[]) {
    rows.push([
      String(r.ranks),
      gbps(r.save_gbps),
      gbps(r.load_gbps),
      gbps(r.cold_save_gbps),
      gbps(r.cold_load_gbps),
      fmtBytes(r.save_peak_rss_bytes as number),
      fmtBytes(r.load_peak_rss_bytes as number),
      fmtBytes(r.rss_target_bytes as number),
      String(r.load_verified) + (r.cold_load_verified === undefined ? '' : `/${String(r.cold_load_verified)}`),
    ]);
  }
  const rs = s.reshard as { saved_by: number; loaded_by: number; load_gbps: number; load_peak_rss_bytes: number; load_verified: boolean } | null;
  if (rs) rows.push([`${rs.saved_by}→${rs.loaded_by}`, '', gbps(rs.load_gbps), '', '', '', fmtBytes(rs.load_peak_rss_bytes), '', String(rs.load_verified)]);
  out.push(table(rows));

  const scale = s.items_scale as Record<string, number>[];
  if (scale.length > 0) {
    out.push(`\nmetadata scale (1 rank, tiny float32 tensors; plan = save() → first write; growth ratio ${fmtNum(s.items_scale_growth_ratio as number, 2)}, 1 = linear)`);
    out.push(
      table([
        ['items', 'plan ms', 'write ms', 'commit ms', 'save ms', 'load plan ms', 'load ms', '(plan+commit) ms / 1k items'],
        ...scale.map((p) => [String(p.items), fmtNum(p.plan_ms, 1), fmtNum(p.write_ms, 1), fmtNum(p.commit_ms, 1), fmtNum(p.save_ms, 1), fmtNum(p.load_plan_ms, 1), fmtNum(p.load_ms, 1), fmtNum(p.plan_commit_ms_per_1k_items, 2)]),
      ]),
    );
  }
  if (s.api) out.push('', ...apiTable(s.api as ReturnType<typeof apiFields>));
  process.stdout.write(out.join('\n') + '\n');
}

/** The admin API figures as JSON fields. */
export function apiFields(api: ApiFigures) {
  return {
    catalog_entries: api.catalogEntries,
    list_page_items: api.listPageItems,
    list_page_requests: api.listPageRequests,
    list_page_p50_ms: api.listPageP50Ms,
    list_page_p99_ms: api.listPageP99Ms,
    list_page_beside_save_p50_ms: api.beside?.listPageP50Ms ?? null,
    list_page_beside_save_p99_ms: api.beside?.listPageP99Ms ?? null,
    list_page_beside_save_requests: api.beside?.listPageRequests ?? null,
    beside_save_bytes: api.beside?.saveBytes ?? null,
    beside_save_gbps: api.beside?.saveGbps ?? null,
    beside_save_ping_p50_ms: api.beside?.pingP50Ms ?? null,
    beside_save_ping_p99_ms: api.beside?.pingP99Ms ?? null,
    list_page_beside_recycling_save_p50_ms: api.besideRecycling?.listPageP50Ms ?? null,
    list_page_beside_recycling_save_p99_ms: api.besideRecycling?.listPageP99Ms ?? null,
    beside_recycling_save_gbps: api.besideRecycling?.saveGbps ?? null,
    beside_recycling_save_ping_p50_ms: api.besideRecycling?.pingP50Ms ?? null,
    beside_recycling_save_ping_p99_ms: api.besideRecycling?.pingP99Ms ?? null,
    beside_paced_save_limit_bytes_per_second: api.besidePaced?.maxBytesPerSecond ?? null,
    list_page_beside_paced_save_p50_ms: api.besidePaced?.listPageP50Ms ?? null,
    list_page_beside_paced_save_p99_ms: api.besidePaced?.listPageP99Ms ?? null,
    beside_paced_save_gbps: api.besidePaced?.saveGbps ?? null,
    beside_paced_save_ping_p50_ms: api.besidePaced?.pingP50Ms ?? null,
    beside_paced_save_ping_p99_ms: api.besidePaced?.pingP99Ms ?? null,
    get_rps: api.getRps,
    get_p50_ms: api.getP50Ms,
    get_p99_ms: api.getP99Ms,
    get_non_2xx: api.getNon2xx,
    get_errors: api.getErrors,
  };
}

function apiTable(api: ReturnType<typeof apiFields>): string[] {
  const p99 = api.list_page_beside_save_p99_ms ?? api.list_page_p99_ms;
  return [
    `admin API (${api.catalog_entries} checkpoints in the catalog, loopback)`,
    table([
      ['request', 'p50 ms', 'p99 ms', 'req/s', 'errors'],
      [`GET /checkpoints?limit=100 (${api.list_page_items} items, ${api.list_page_requests} sequential)`, fmtNum(api.list_page_p50_ms, 2), fmtNum(api.list_page_p99_ms, 2), '', '0'],
      ...(api.list_page_beside_save_p99_ms !== null
        ? [
            [`  the same beside a save loop (${fmtBytes(api.beside_save_bytes)} saves into new keys, ${fmtNum(api.beside_save_gbps, 2)} GB/s meanwhile)`, fmtNum(api.list_page_beside_save_p50_ms, 2), fmtNum(api.list_page_beside_save_p99_ms, 2), '', '0'],
            ['    Redis PING meanwhile (the server itself)', fmtNum(api.beside_save_ping_p50_ms, 2), fmtNum(api.beside_save_ping_p99_ms, 2), '', ''],
          ]
        : []),
      ...(api.list_page_beside_recycling_save_p99_ms !== null
        ? [
            [`  the same beside a recycling save loop (recycleTtlMs, ${fmtNum(api.beside_recycling_save_gbps, 2)} GB/s meanwhile)`, fmtNum(api.list_page_beside_recycling_save_p50_ms, 2), fmtNum(api.list_page_beside_recycling_save_p99_ms, 2), '', '0'],
            ['    Redis PING meanwhile (the server itself)', fmtNum(api.beside_recycling_save_ping_p50_ms, 2), fmtNum(api.beside_recycling_save_ping_p99_ms, 2), '', ''],
          ]
        : []),
      ...(api.list_page_beside_paced_save_p99_ms !== null
        ? [
            [`  the same beside a save loop paced by maxBytesPerSecond ${fmtNum((api.beside_paced_save_limit_bytes_per_second ?? 0) / 1e9, 2)} GB/s (${fmtNum(api.beside_paced_save_gbps, 2)} GB/s meanwhile)`, fmtNum(api.list_page_beside_paced_save_p50_ms, 2), fmtNum(api.list_page_beside_paced_save_p99_ms, 2), '', '0'],
            ['    Redis PING meanwhile (the server itself)', fmtNum(api.beside_paced_save_ping_p50_ms, 2), fmtNum(api.beside_paced_save_ping_p99_ms, 2), '', ''],
          ]
        : []),
      ['GET /checkpoints/{id} (autocannon, 8 connections)', fmtNum(api.get_p50_ms, 2), fmtNum(api.get_p99_ms, 2), fmtNum(api.get_rps, 0), String(api.get_non_2xx + api.get_errors)],
    ]),
    `catalog page p99 target < 20 ms (${api.list_page_beside_save_p99_ms !== null ? 'beside a save into new keys' : 'alone'}): ${p99 < 20 ? 'met' : 'NOT met'}`,
    ...(api.list_page_beside_recycling_save_p99_ms !== null ? [`catalog page p99 target < 20 ms beside a recycling save (the CheckpointManager's default): ${api.list_page_beside_recycling_save_p99_ms < 20 ? 'met' : 'NOT met'}`] : []),
  ];
}

export function printApiTable(api: ApiFigures): void {
  process.stdout.write(apiTable(apiFields(api)).join('\n') + '\n');
}
