/**
 * `npm run bench -- --only load`: the figures and table of the load comparison (bench/run.ts
 * loadComparison): 1-rank steady save/load against raw SET and raw GET in fresh and in warm
 * processes, interleaved rounds, with the machine's load average. Like with like: the library's
 * load in a warm process (its second load there) against the warm raw GET (its second read),
 * the first load in a fresh rank process against the raw GET in fresh processes. docs/performance.md.
 */
import { DEFAULT_SEGMENT_BYTES } from '../src/redis/segment-layout.js';
import { fmtBytes, fmtNum, table } from './report.js';

export interface LoadComparison {
  readonly state_dict_bytes: number;
  readonly rounds: ReadonlyArray<{ raw_set_gbps: number; raw_get_gbps: number; raw_get_warm_gbps: number; save_gbps: number; load_gbps: number; load_warm_gbps?: number }>;
  readonly save_gbps: number;
  readonly load_gbps: number;
  readonly raw_set_gbps: number;
  /** Raw GET in fresh worker processes (every reply buffer is fresh memory). */
  readonly raw_get_gbps: number;
  /** Raw GET in a warm process (second read of the same keys): the baseline of the load ratio. */
  readonly raw_get_warm_gbps: number;
  readonly raw_get_warm_chunk_bytes: number;
  readonly raw_get_warm_concurrency: number;
  readonly save_vs_raw_set: number;
  /** The first load in a fresh rank process / the warm raw GET (the ratio of record before session 7). */
  readonly load_vs_raw_get: number;
  readonly load_vs_raw_get_fresh: number;
  /** The library's second load in a rank's process (tensors, allocator and JIT warm). */
  readonly load_warm_gbps: number;
  /** Like with like, the load target: the warm load / the warm raw GET. */
  readonly load_warm_vs_raw_get_warm: number;
  readonly load_warm_verified: boolean;
  readonly save_peak_rss_bytes: number;
  readonly load_peak_rss_bytes: number;
  readonly peak_rss_target_bytes: number;
  readonly load_verified: boolean;
  readonly raw_get_verified: boolean;
  readonly load_average: { readonly before: readonly number[]; readonly after: readonly number[] };
}

const gbps = (v: number) => fmtNum(v, 2);
const ratio = (v: number) => fmtNum(v, 2, '×');
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

export function printLoadComparison(c: LoadComparison): void {
  const la = (l: readonly number[]) => l.map((v) => v.toFixed(2)).join(' ');
  const out = [
    `load comparison: ${fmtBytes(c.state_dict_bytes)}, 1 rank, steady, verification on; medians of ${c.rounds.length} interleaved rounds`,
    `load average (1/5/15 min) before ${la(c.load_average.before)}, after ${la(c.load_average.after)}`,
    '',
    table([
      ['figure', 'median', 'target', 'rounds'],
      ['save GB/s', gbps(c.save_gbps), '', c.rounds.map((r) => gbps(r.save_gbps)).join(' ')],
      [`raw SET GB/s (${fmtBytes(DEFAULT_SEGMENT_BYTES)} × 4, the library's segment size, fresh process)`, gbps(c.raw_set_gbps), '', c.rounds.map((r) => gbps(r.raw_set_gbps)).join(' ')],
      ['load GB/s, fresh rank process (its first load)', gbps(c.load_gbps), '', c.rounds.map((r) => gbps(r.load_gbps)).join(' ')],
      ['load GB/s, warm rank process (its second load)', gbps(c.load_warm_gbps), '', c.rounds.map((r) => gbps(r.load_warm_gbps ?? NaN)).join(' ')],
      [`raw GET GB/s, warm process (${fmtBytes(c.raw_get_warm_chunk_bytes)} × ${c.raw_get_warm_concurrency})`, gbps(c.raw_get_warm_gbps), '', c.rounds.map((r) => gbps(r.raw_get_warm_gbps)).join(' ')],
      [`raw GET GB/s, fresh process (${fmtBytes(DEFAULT_SEGMENT_BYTES)} × 4)`, gbps(c.raw_get_gbps), '', c.rounds.map((r) => gbps(r.raw_get_gbps)).join(' ')],
      ['save / raw SET', ratio(c.save_vs_raw_set), `≥ 1.00× ${met(c.save_vs_raw_set >= 1)}`, ''],
      ['load / raw GET, both in warm processes', ratio(c.load_warm_vs_raw_get_warm), `≥ 0.90× ${met(c.load_warm_vs_raw_get_warm >= 0.9)}`, ''],
      ['load / raw GET, both in fresh processes', ratio(c.load_vs_raw_get_fresh), '', ''],
      ['load in a fresh rank process / raw GET in a warm one', ratio(c.load_vs_raw_get), '', ''],
      ['save peak RSS', fmtBytes(c.save_peak_rss_bytes), `≤ ${fmtBytes(c.peak_rss_target_bytes)} ${met(c.save_peak_rss_bytes <= c.peak_rss_target_bytes)}`, ''],
      ['load peak RSS', fmtBytes(c.load_peak_rss_bytes), `≤ ${fmtBytes(c.peak_rss_target_bytes)} ${met(c.load_peak_rss_bytes <= c.peak_rss_target_bytes)}`, ''],
      ['loaded bytes verified (fresh, warm) / raw GETs verified', `${c.load_verified}, ${c.load_warm_verified} / ${c.raw_get_verified}`, '', ''],
    ]),
    '',
    'which pair applies: a trainer loading into tensors it already holds, in a process that has run a while, meets the warm one;',
    'a rank process that has just started (its buffers are fresh memory, faulted in page by page) meets the fresh one.',
  ];
  process.stdout.write(out.join('\n') + '\n');
}
