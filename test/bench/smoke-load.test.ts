/**
 * Smoke run of the load comparison (`bench/run.ts --only load --quick`) as a child process:
 * the warm-process load (a rank's second load, compared with the warm raw GET) runs and
 * verifies in every round, beside the fresh-process figures. No timing assertions. The full
 * `--quick` run (smoke.test.ts) does not take this path.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeArgs, repoRoot } from '../helpers/child.js';

t.test('npm run bench -- --only load --quick: warm and fresh loads in every round, all verified', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'redis-dcp-bench-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const jsonPath = join(dir, 'load.json');
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs('bench/run.ts'), '--only', 'load', '--quick', '--json', jsonPath], { cwd: repoRoot, timeout: 200_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bench failed: ${err.message}\n${stderr}`));
      else resolve({ stdout });
    });
  });
  t.match(stdout, /load \/ raw GET, both in warm processes/, 'the like-with-like row is printed');
  const s = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  const positive = (name: string, value: unknown = s[name]) => t.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${name} is a positive number (${String(value)})`);
  t.ok((s.state_dict_bytes as number) >= 32 * 2 ** 20 * 0.99, 'quick run moves ~32 MiB');
  for (const f of ['save_gbps', 'load_gbps', 'load_warm_gbps', 'raw_set_gbps', 'raw_get_gbps', 'raw_get_warm_gbps', 'save_vs_raw_set', 'load_warm_vs_raw_get_warm', 'load_vs_raw_get_fresh', 'save_peak_rss_bytes', 'load_peak_rss_bytes']) positive(f);
  t.equal(s.load_verified, true, 'every fresh-process load verified');
  t.equal(s.load_warm_verified, true, 'every warm-process load verified');
  t.equal(s.raw_get_verified, true, 'the raw GETs read back what was SET');
  const rounds = s.rounds as Array<Record<string, unknown>>;
  t.ok(Array.isArray(rounds) && rounds.length >= 2, `${rounds.length} interleaved rounds`);
  for (const [i, round] of rounds.entries()) positive(`round ${i + 1} load_warm_gbps`, round.load_warm_gbps);
  t.equal(s.load_warm_vs_raw_get_warm, (s.load_warm_gbps as number) / (s.raw_get_warm_gbps as number), 'the target ratio is warm load ÷ warm raw GET');
});
