/**
 * Smoke run of the async save part of the benchmark (`bench/run.ts --only async`, 8 MiB)
 * as a child process: every async figure is there with a sane value. No timing
 * assertions. Separate from smoke.test.ts so each stays within the per-file timeout.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeArgs, repoRoot } from '../helpers/child.js';

t.test('npm run bench --only async --quick: asyncSave against save of the same state dict', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'redis-dcp-bench-async-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const jsonPath = join(dir, 'bench.json');
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [...nodeArgs('bench/run.ts'), '--only', 'async', '--quick', '--bytes', '8MiB', '--items', '100', '--json', jsonPath], { cwd: repoRoot, timeout: 200_000, maxBuffer: 16 << 20 }, (err, out, stderr) => {
      if (err) reject(new Error(`bench failed: ${err.message}\n${stderr}`));
      else resolve(out);
    });
  });
  t.match(stdout, /asyncSave blocked/, 'the async table is printed');
  const s = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  const positive = (name: string, value: unknown = s[name]) => t.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${name} is a positive number (${String(value)})`);
  for (const f of ['async_save_s', 'async_blocked_s', 'async_total_s', 'async_blocked_ratio', 'async_first_blocked_s', 'async_first_total_s', 'async_busy_upload_s', 'async_busy_upload_gbps', 'async_busy_upload_vs_save', 'async_peak_rss_bytes']) positive(f);
  t.ok((s.async_blocked_s as number) < (s.async_total_s as number), 'asyncSave blocks for less than its whole duration');
  t.ok((s.async_peak_rss_bytes as number) > 2 * (s.state_dict_bytes as number), 'the async rank holds the state dict and its staged copy');
  t.equal(typeof s.async_busy_covered_upload, 'boolean');
  const rounds = s.async_busy_rounds as Array<{ sync_save_s: number; busy_upload_s: number }>;
  t.equal(rounds.length, 1, '--quick: one paired round of a sync save and a busy upload');
  t.ok(rounds.every((r) => r.sync_save_s > 0 && r.busy_upload_s > 0), 'each round has both durations');
  t.equal(s.async_busy_upload_vs_save, rounds[0]!.sync_save_s / rounds[0]!.busy_upload_s, 'the ratio is the round\'s own');
  t.same(Object.keys(s.async_targets as object).sort(), ['async_blocked_ratio', 'async_busy_upload_vs_save', 'async_peak_rss_bytes']);
});
