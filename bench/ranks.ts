/**
 * Runs one save or load as `worldSize` rank processes (bench/rank-worker.ts) and
 * folds their reports into one figure: wall time from the earliest post-barrier
 * start to the latest completion, bytes per second over the unique state dict bytes.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { WorkerResult, WorkerTask } from './rank-worker.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
/** Compiled (`npm run bench`): ranks run as plain JavaScript, as users run the library; under tsx (the smoke test), through tsx. */
export const compiled = import.meta.url.endsWith('.js');
const workerCommand = compiled ? [join(benchDir, 'rank-worker.js')] : ['--import', 'tsx', join(benchDir, 'rank-worker.ts')];
const repoRoot = compiled ? join(benchDir, '..', '..') : join(benchDir, '..');

export interface RanksFigure {
  readonly worldSize: number;
  readonly seconds: number;
  readonly gbps: number;
  /** Largest peak RSS of any rank, and that rank's state dict bytes. */
  readonly peakRssBytes: number;
  readonly peakRssRankBytes: number;
  /** Target: peak RSS ≤ rank bytes × 1.15 + 64 MiB on every rank. */
  readonly rssWithinTarget: boolean;
  /** Loads only: every byte of every rank matched the expected content. */
  readonly verified: boolean | undefined;
  readonly verifiedBytes: number | undefined;
  readonly ranks: readonly WorkerResult[];
}

export const RSS_TARGET = (rankBytes: number) => rankBytes * 1.15 + 64 * 2 ** 20;

/** Spawns one worker and resolves with its RESULT line. */
function runWorker(task: WorkerTask, killAfterMs: number): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...workerCommand, JSON.stringify(task)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (code === 0 && line) resolve(JSON.parse(line.slice('RESULT '.length)) as WorkerResult);
      else reject(new Error(`rank ${task.rank} of ${task.worldSize} (${task.mode}) exited with ${signal ?? code}:\n${stderr.trim()}`));
    });
  });
}

/**
 * A child process that runs until its stdin closes: resolves once it printed `ready` on its own
 * line; `stop()` closes its stdin and resolves with `result` of its stdout once it exited (0).
 */
async function startUntilStdinCloses<T>(name: string, args: readonly string[], ready: string, result: (stdout: string) => T | undefined): Promise<{ stop(): Promise<T> }> {
  const child = spawn(process.execPath, [...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  const exited = new Promise<T>((resolve, reject) => {
    child.once('exit', (code) => {
      const value = code === 0 ? result(stdout) : undefined;
      if (value !== undefined) resolve(value);
      else reject(new Error(`${name} exited with ${code}:\n${stderr.trim()}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes(`${ready}\n`)) resolve();
    });
    exited.catch(reject);
  });
  return {
    stop: async () => {
      child.stdin.end();
      return exited;
    },
  };
}

/**
 * A save loop in its own process (rank-worker save-loop) beside a measurement: resolves once
 * its first save started; `stop()` ends it after the save in progress and resolves with the
 * bytes of the saves it counted and the seconds they took (the loop's own clock: from the start of
 * its first counted save to the end of its last).
 */
export function startSaveLoop(task: Omit<WorkerTask, 'rank' | 'worldSize' | 'mode'>): Promise<{ stop(): Promise<{ bytes: number; seconds: number }> }> {
  return startUntilStdinCloses('save loop', [...workerCommand, JSON.stringify({ ...task, mode: 'save-loop', rank: 0, worldSize: 1 })], 'SAVING', (stdout) => {
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
    const result = line ? (JSON.parse(line.slice('RESULT '.length)) as WorkerResult) : undefined;
    return result ? { bytes: result.rankBytes, seconds: (result.endEpochMs - result.startEpochMs) / 1000 } : undefined;
  });
}

/** Runs the task on ranks 0..worldSize-1; `uniqueBytes` is what the throughput counts. */
export async function runRanks(base: Omit<WorkerTask, 'rank' | 'worldSize'>, worldSize: number, uniqueBytes: number): Promise<RanksFigure> {
  const settled = await Promise.allSettled(Array.from({ length: worldSize }, (_, rank) => runWorker({ ...base, rank, worldSize }, base.timeoutMs * 4 + 60_000)));
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failures.length > 0) throw new Error(failures.map((f) => (f.reason instanceof Error ? f.reason.message : String(f.reason))).join('\n'));
  const ranks = settled.map((s) => (s as PromiseFulfilledResult<WorkerResult>).value);
  const seconds = (Math.max(...ranks.map((r) => r.endEpochMs)) - Math.min(...ranks.map((r) => r.startEpochMs))) / 1000;
  const peak = ranks.reduce((a, b) => (b.peakRssBytes > a.peakRssBytes ? b : a));
  const verifications = ranks.map((r) => r.verification).filter((v) => v !== undefined);
  const isLoad = base.mode === 'load' || base.mode === 'raw-get' || base.mode === 'raw-get-warm';
  return {
    worldSize,
    seconds,
    gbps: uniqueBytes / seconds / 1e9,
    peakRssBytes: peak.peakRssBytes,
    peakRssRankBytes: peak.rankBytes,
    rssWithinTarget: ranks.every((r) => r.peakRssBytes <= RSS_TARGET(r.rankBytes)),
    verified: isLoad ? verifications.length === worldSize && verifications.every((v) => v.mismatchedWords === 0 && v.problems.length === 0) : undefined,
    verifiedBytes: isLoad ? verifications.reduce((s, v) => s + v.verifiedBytes, 0) : undefined,
    ranks,
  };
}

/** Redis PINGs from a process of its own (bench/ping-loop.ts) until stop(), which resolves to the round trips in ms. */
export function startPingLoop(redisUrl: string): Promise<{ stop(): Promise<number[]> }> {
  const script = compiled ? [join(benchDir, 'ping-loop.js')] : ['--import', 'tsx', join(benchDir, 'ping-loop.ts')];
  return startUntilStdinCloses('ping loop', [...script, redisUrl], 'PINGING', (stdout) => {
    const line = stdout.split('\n').find((l) => l.startsWith('['));
    return line ? (JSON.parse(line) as number[]) : undefined;
  });
}
