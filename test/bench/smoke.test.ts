/**
 * Smoke run of the benchmark (`bench/run.ts --quick`) as a child process: every JSON
 * field is there with a sane value and the loaded data verified. No timing assertions:
 * the figures depend on the machine and its load.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBenchArgs, parseBytes } from '../../bench/args.js';
import { makeLayout, makeRankStateDict, verifyRankStateDict, rowBlock } from '../../bench/synthetic.js';
import type { ShardedTensor } from '../../src/core/tensor.js';
import { nodeArgs, repoRoot } from '../helpers/child.js';

t.test('byte sizes on the command line', async (t) => {
  t.equal(parseBytes('1GiB'), 2 ** 30);
  t.equal(parseBytes('32MiB'), 32 * 2 ** 20);
  t.equal(parseBytes('1g'), 2 ** 30, 'a bare unit is binary');
  t.equal(parseBytes('1GB'), 1e9);
  t.equal(parseBytes('4096'), 4096);
  t.throws(() => parseBytes('lots'));
});

t.test('--only picks one part (load: the load comparison, api: the admin API figures)', async (t) => {
  for (const part of ['async', 'incremental', 'tracing', 'cluster', 'load', 'api']) t.equal(parseBenchArgs(['--only', part]).only, part);
  t.equal(parseBenchArgs([]).only, undefined);
  t.throws(() => parseBenchArgs(['--only', 'everything']), /unknown part "everything" \(known: .*load, api\)/);
});

t.test('synthetic state dict: shards tile the rows and verification catches a wrong byte', async (t) => {
  const layout = makeLayout({ totalBytes: 1 << 20, smallItems: 10 });
  for (const spec of layout.large) {
    const blocks = [0, 1, 2].map((r) => rowBlock(spec.rows, 3, r));
    t.equal(blocks[0]!.start, 0);
    t.equal(blocks[2]!.end, spec.rows);
    t.equal(blocks[1]!.start, blocks[0]!.end);
  }
  const saved = makeRankStateDict(layout, 2, 1, true);
  t.same(verifyRankStateDict(layout, saved.stateDict, 2, 1).mismatchedWords, 0, 'filled content verifies');
  const empty = makeRankStateDict(layout, 2, 1, false);
  const v = verifyRankStateDict(layout, empty.stateDict, 2, 1);
  t.ok(v.problems.length > 0, 'an unloaded state dict does not verify');
  const weight = (saved.stateDict.layers as Record<string, { weight: ShardedTensor }>)['0']!.weight;
  weight.localShards[0]!.tensor.bytes[5] ^= 1;
  t.equal(verifyRankStateDict(layout, saved.stateDict, 2, 1).mismatchedWords, 1, 'one flipped bit is one bad word');
});

t.test('npm run bench --quick writes every figure', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'redis-dcp-bench-smoke-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const jsonPath = join(dir, 'bench.json');
  const { stdout } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs('bench/run.ts'), '--quick', '--skip', 'async', '--json', jsonPath], { cwd: repoRoot, timeout: 200_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bench failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
  t.match(stdout, /save GB\/s/, 'the table is printed on stdout');
  const s = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;

  const positive = (name: string, value: unknown = s[name]) => t.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${name} is a positive number (${String(value)})`);
  t.ok((s.state_dict_bytes as number) >= 32 * 2 ** 20 * 0.99, 'quick run moves ~32 MiB');
  const fields = ['save_gbps', 'load_gbps', 'raw_set_gbps', 'raw_get_gbps', 'raw_get_warm_gbps', 'load_vs_raw_get_fresh', 'fs_write_gbps', 'fs_read_gbps', 'save_peak_rss_bytes', 'load_peak_rss_bytes', 'redis_memory_overhead', 'save_vs_raw_set', 'load_vs_raw_get', 'save_vs_fs_write', 'load_vs_fs_read'];
  for (const f of fields) {
    positive(f);
    positive(`cold_${f}`);
  }
  for (const p of ['', 'cold_']) {
    t.equal(s[`${p}load_verified`], true, `${p}load verified every byte`);
    t.equal(s[`${p}raw_get_verified`], true, `${p}raw GET verified`);
    const overhead = s[`${p}redis_memory_overhead`] as number;
    t.ok(overhead >= 1 && overhead < 2, `${p}redis_memory_overhead is growth/payload (${overhead})`);
  }
  for (const k of ['save_peak_rss_bytes', 'load_peak_rss_bytes']) t.ok((s[k] as number) > (s.state_dict_bytes as number), `${k} holds at least the state dict`);
  positive('worker_idle_rss_bytes');
  for (const f of ['socket_set_gbps', 'socket_get_gbps', 'cold_socket_set_gbps', 'cold_socket_get_gbps']) positive(f);
  positive('loopback_socket_gbps');
  for (const f of ['incremental_save_gbps', 'incremental_speedup', 'incremental_full_save_s', 'incremental_hash_s', 'incremental_0pct_speedup']) positive(f);
  t.ok((s.incremental_stored_ratio as number) > 0 && (s.incremental_stored_ratio as number) <= 0.12, `10 % changed stores about 10 % (${String(s.incremental_stored_ratio)})`);
  t.equal(s.incremental_0pct_stored_ratio, 0, 'an unchanged state dict stores nothing');
  positive('fs_write_fsync_gbps');

  const perRank = s.per_rank_count as Record<string, unknown>[];
  t.same(perRank.map((r) => r.ranks), [1, 2], 'quick runs 1 and 2 ranks');
  for (const r of perRank) {
    for (const f of ['save_gbps', 'load_gbps', 'cold_save_gbps', 'cold_load_gbps', 'save_peak_rss_bytes', 'load_peak_rss_bytes', 'rank_state_dict_bytes']) positive(`ranks=${String(r.ranks)} ${f}`, r[f]);
    t.equal(r.load_verified, true, `ranks=${String(r.ranks)} load verified`);
    t.equal(r.cold_load_verified, true, `ranks=${String(r.ranks)} cold load verified`);
    t.ok((r.load_verified_bytes as number) >= (s.state_dict_bytes as number), `ranks=${String(r.ranks)} compared every loaded byte (${String(r.load_verified_bytes)})`);
  }
  const reshard = s.reshard as Record<string, unknown>;
  t.equal(reshard.saved_by, 2);
  t.equal(reshard.loaded_by, 3);
  t.equal(reshard.load_verified, true, 'resharding load verified');
  positive('reshard load_gbps', reshard.load_gbps);

  const scale = s.items_scale as Record<string, unknown>[];
  t.same(scale.map((p) => p.items), [1000, 5000]);
  for (const p of scale) {
    for (const f of ['plan_ms', 'commit_ms', 'save_ms', 'load_plan_ms', 'load_ms']) positive(`items=${String(p.items)} ${f}`, p[f]);
    t.equal(p.verified, true, `items=${String(p.items)} loaded back`);
  }
  positive('items_scale_growth_ratio');

  const api = s.api as Record<string, unknown>;
  t.equal(api.catalog_entries, 500);
  t.equal(api.list_page_items, 100, 'pages are full 100-item pages');
  for (const f of ['list_page_p50_ms', 'list_page_p99_ms', 'list_page_beside_save_p50_ms', 'list_page_beside_save_p99_ms', 'beside_save_gbps', 'get_rps']) positive(`api ${f}`, api[f]);
  // Beside a recycling save loop too, and Redis' own PING latency (from another process) under each save loop.
  for (const f of ['list_page_beside_recycling_save_p50_ms', 'list_page_beside_recycling_save_p99_ms', 'beside_recycling_save_gbps', 'beside_save_ping_p50_ms', 'beside_save_ping_p99_ms', 'beside_recycling_save_ping_p99_ms']) positive(`api ${f}`, api[f]);
  // Beside a save loop paced by the writer's maxBytesPerSecond: its saves stay at or under the limit.
  for (const f of ['list_page_beside_paced_save_p50_ms', 'list_page_beside_paced_save_p99_ms', 'beside_paced_save_gbps', 'beside_paced_save_ping_p99_ms']) positive(`api ${f}`, api[f]);
  t.ok((api.beside_paced_save_gbps as number) * 1e9 <= (api.beside_paced_save_limit_bytes_per_second as number) * 1.05, `the paced save loop kept to its limit (${String(api.beside_paced_save_gbps)} GB/s)`);
  t.equal(api.get_non_2xx, 0, 'GET /checkpoints/{id} answered 2xx throughout');

  // The CheckpointManager loop (issue 12) at the --quick size: 8 saves of 8 MiB, keepLast 2: whole saves, with recycling, incremental (the default).
  const loop = s.manager_loop as { state_dict_bytes: number; modes: Array<Record<string, number | boolean | string>> };
  t.equal(loop.state_dict_bytes, 8 * 2 ** 20);
  t.same(loop.modes.map((m) => [m.mode, m.recycling]), [['plain', false], ['recycling', true], ['incremental', false]]);
  for (const m of loop.modes) for (const f of ['save_gbps_median', 'used_memory_max_bytes', 'retention_ms_median']) positive(`manager loop ${f}`, m[f]);

  // The tracing channels' cost (issue 14) at the --quick size: 1 round of a 32 MiB save.
  const tracing = s.tracing as Record<string, number>;
  t.equal(tracing.state_dict_bytes, 32 * 2 ** 20);
  t.equal(tracing.rounds, 1);
  for (const f of ['save_s_median_unsubscribed', 'save_s_median_subscribed', 'instrumentation_us_per_save', 'overhead_bound_ratio']) positive(`tracing ${f}`, tracing[f]);
  t.type(tracing.overhead_ab_ratio, 'number');
  // Redis Cluster vs standalone (issue 15) at the --quick size: 1 round of 32 MiB on a local 3-master cluster, every load checked byte for byte.
  const cluster = s.cluster as Record<string, number>;
  t.equal(cluster.state_dict_bytes, 32 * 2 ** 20);
  t.equal(cluster.masters, 3);
  for (const f of ['standalone_save_gbps', 'standalone_load_gbps', 'cluster_save_gbps', 'cluster_load_gbps', 'cluster_ioredis_save_gbps', 'cluster_ioredis_load_gbps', 'standalone_recycled_save_gbps', 'cluster_recycled_save_gbps', 'save_ratio', 'load_ratio', 'standalone_reload_gbps', 'cluster_reload_gbps', 'reload_ratio', 'standalone_recycled_load_gbps', 'cluster_recycled_load_gbps', 'recycled_load_ratio']) positive(`cluster ${f}`, cluster[f]);

  const raw = s.raw as Record<string, unknown>;
  t.equal((raw.sweep as unknown[]).length, 12, 'the sweep tried 3 chunk sizes × 4 concurrencies');
  positive('raw set_chunk_bytes', raw.set_chunk_bytes);
  const rb = s.redis_benchmark as Record<string, unknown> | null;
  if (rb !== null) positive('redis-benchmark set_gbps', rb.set_gbps);
  t.type(s.targets, 'object');
});
