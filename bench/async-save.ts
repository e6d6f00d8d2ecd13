/**
 * The async save figures of `npm run bench` (issue 11): in one rank process (world
 * size 1, RedisProcessGroup, steady condition: every measured save writes into memory a
 * deleted checkpoint freed), the sync save of the state dict, then asyncSave of the same
 * state dict: time blocked (call → staged) and total (call → committed), first save (it
 * allocates the staging buffers and starts the worker) and a steady one, then the
 * upload's speed while the main thread busy-loops, each beside a sync save in paired rounds
 * (one sync save alone let a single slow or fast save decide the ratio), and the rank's peak
 * RSS (one staged copy: target ≤ 2.15 × state dict + 64 MiB). See docs/performance.md, "Async save".
 */
import type { Redis } from 'ioredis';
import { asyncSave, uploadTimesOf } from '../src/core/async-save.js';
import { save } from '../src/core/save.js';
import type { StateDict } from '../src/core/state-dict.js';
import type { RedisProcessGroup } from '../src/group/redis-process-group.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { median } from './report.js';

/** What the async-save rank reports (inside its WorkerResult). */
export interface AsyncRankFigures {
  /** The median of the rounds' sync saves. */
  readonly syncSaveS: number;
  readonly firstBlockedS: number;
  readonly firstTotalS: number;
  readonly blockedS: number;
  readonly totalS: number;
  /** The median of the rounds' upload durations (worker: job received → committed) while the main thread busy-looped. */
  readonly busyUploadS: number;
  /** Whether the busy loop lasted past the commit in every round (else the figure is not "while busy"). */
  readonly busyCoveredUpload: boolean;
  readonly busyLoopS: number;
  /** Each paired round: its sync save, then an asyncSave whose upload ran while the main thread busy-looped. */
  readonly rounds: ReadonlyArray<{ readonly syncSaveS: number; readonly busyUploadS: number }>;
}

export const ASYNC_RSS_TARGET = (rankBytes: number) => rankBytes * 2.15 + 64 * 2 ** 20;

const seconds = (fromMs: number) => (performance.now() - fromMs) / 1000;
const epochNow = () => performance.timeOrigin + performance.now();

/** Rank side: every measured save goes to a fresh id and is deleted after, so Redis writes into freed memory each time. */
export async function runAsyncRank(stateDict: StateDict, redis: Redis, group: RedisProcessGroup, prefix: string, id: string, rounds = 1): Promise<AsyncRankFigures> {
  const catalog = new CheckpointCatalog({ redis, prefix });
  const writer = new RedisStorageWriter({ redis, prefix, overwrite: true });
  const options = (suffix: string) => ({ storageWriter: writer, processGroup: group, checkpointId: `${id}-${suffix}` });
  try {
    await save(stateDict, options('warmup'));
    await catalog.delete(`${id}-warmup`);

    const syncSave = async (suffix: string): Promise<number> => {
      await group.barrier();
      const t0 = performance.now();
      await save(stateDict, options(suffix));
      const s = seconds(t0);
      await catalog.delete(`${id}-${suffix}`);
      return s;
    };

    const timed = async (suffix: string) => {
      await group.barrier();
      const start = performance.now();
      const response = asyncSave(stateDict, options(suffix));
      await response.staged;
      const blockedS = seconds(start);
      await response.committed;
      const totalS = seconds(start);
      await catalog.delete(`${id}-${suffix}`);
      return { blockedS, totalS };
    };
    // The trainer computes right after staged: a busy loop long enough to cover the upload.
    const busyUpload = async (suffix: string, busyLoopS: number): Promise<{ uploadS: number; covered: boolean }> => {
      await group.barrier();
      const response = asyncSave(stateDict, options(suffix));
      await response.staged;
      const t0 = performance.now();
      while (seconds(t0) < busyLoopS) {
        // compute: the event loop does not turn
      }
      const busyEndMs = epochNow();
      await response.committed;
      const times = (await uploadTimesOf(response))!;
      await catalog.delete(`${id}-${suffix}`);
      return { uploadS: (times.committedAtMs - times.startedAtMs) / 1000, covered: times.committedAtMs <= busyEndMs };
    };

    const first = await timed('first');
    const steady = await timed('steady');
    const paired: Array<{ syncSaveS: number; busyUploadS: number }> = [];
    let covered = true;
    let busyLoopS = 0;
    for (let r = 0; r < rounds; r++) {
      const syncSaveS = await syncSave(`sync-${r}`);
      busyLoopS = Math.max(3, 4 * syncSaveS);
      const busy = await busyUpload(`busy-${r}`, busyLoopS);
      covered &&= busy.covered;
      paired.push({ syncSaveS, busyUploadS: busy.uploadS });
    }
    return {
      syncSaveS: median(paired.map((p) => p.syncSaveS)),
      firstBlockedS: first.blockedS,
      firstTotalS: first.totalS,
      blockedS: steady.blockedS,
      totalS: steady.totalS,
      busyUploadS: median(paired.map((p) => p.busyUploadS)),
      busyCoveredUpload: covered,
      busyLoopS,
      rounds: paired,
    };
  } finally {
    await writer.close();
    await catalog.close();
  }
}

/** The summary fields (flat, like the others) and their targets. */
export function asyncSummary(f: AsyncRankFigures, rankBytes: number, peakRssBytes: number) {
  const blockedRatio = f.blockedS / f.syncSaveS;
  // Speeds over the same bytes, each round's upload against its own sync save: the median of the rounds' ratios.
  const busyVsSave = median(f.rounds.map((r) => r.syncSaveS / r.busyUploadS));
  return {
    async_save_s: f.syncSaveS,
    async_blocked_s: f.blockedS,
    async_total_s: f.totalS,
    async_blocked_ratio: blockedRatio,
    async_first_blocked_s: f.firstBlockedS,
    async_first_total_s: f.firstTotalS,
    async_busy_upload_s: f.busyUploadS,
    async_busy_upload_gbps: rankBytes / f.busyUploadS / 1e9,
    async_busy_upload_vs_save: busyVsSave,
    async_busy_covered_upload: f.busyCoveredUpload,
    async_busy_rounds: f.rounds.map((r) => ({ sync_save_s: r.syncSaveS, busy_upload_s: r.busyUploadS })),
    async_peak_rss_bytes: peakRssBytes,
    async_rss_target_bytes: ASYNC_RSS_TARGET(rankBytes),
    async_targets: {
      async_blocked_ratio: { target: 0.2, value: blockedRatio, met: blockedRatio <= 0.2 },
      async_busy_upload_vs_save: { target: 0.8, value: busyVsSave, met: busyVsSave >= 0.8 },
      async_peak_rss_bytes: { target: ASYNC_RSS_TARGET(rankBytes), value: peakRssBytes, met: peakRssBytes <= ASYNC_RSS_TARGET(rankBytes) },
    },
  };
}

export type AsyncSummary = ReturnType<typeof asyncSummary>;

export function printAsyncTable(s: AsyncSummary): void {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const mark = (met: boolean) => (met ? 'met' : 'MISSED');
  const t = s.async_targets;
  const lines = [
    '',
    'async save (1 rank, steady; the same state dict as the sync save)',
    `  sync save                         ${s.async_save_s.toFixed(3)} s`,
    `  asyncSave blocked (call→staged)   ${s.async_blocked_s.toFixed(3)} s   ratio ${s.async_blocked_ratio.toFixed(3)} (target ≤ 0.2: ${mark(t.async_blocked_ratio.met)})`,
    `  asyncSave total (call→committed)  ${s.async_total_s.toFixed(3)} s`,
    `  first asyncSave blocked / total   ${s.async_first_blocked_s.toFixed(3)} s / ${s.async_first_total_s.toFixed(3)} s (allocates staging, starts the worker)`,
    `  upload while main thread busy     ${s.async_busy_upload_s.toFixed(3)} s, ${s.async_busy_upload_gbps.toFixed(2)} GB/s = ${s.async_busy_upload_vs_save.toFixed(2)}× sync save speed (target ≥ 0.8: ${mark(t.async_busy_upload_vs_save.met)})${s.async_busy_covered_upload ? '' : ' [the busy loop ended before the commit]'}`,
    `    paired rounds (sync save / busy upload s): ${s.async_busy_rounds.map((r) => `${r.sync_save_s.toFixed(3)} / ${r.busy_upload_s.toFixed(3)}`).join(', ')}; the ratio is the median of the rounds' own`,
    `  peak RSS of the async rank        ${mib(s.async_peak_rss_bytes)} (target ≤ ${mib(s.async_rss_target_bytes)}: ${mark(t.async_peak_rss_bytes.met)})`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
