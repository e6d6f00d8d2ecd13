/**
 * `npm test` checks the machine first (scripts/preflight.mjs): with a program missing it
 * stops with exit 1 and one line naming what to install, before any test runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const script = new URL('../scripts/preflight.mjs', import.meta.url).pathname;

/** A PATH holding only `programs` (symlinks to the real ones, plus node). */
function pathWith(programs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'preflight-'));
  symlinkSync(process.execPath, join(dir, 'node'));
  for (const program of programs) {
    const found = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).stdout.trim();
    if (found) symlinkSync(found, join(dir, program));
  }
  return dir;
}

function preflight(path: string, ...args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { env: { PATH: path }, encoding: 'utf8' });
}

t.test('this machine has everything: exit 0, silent', async (t) => {
  const run = preflight(process.env.PATH ?? '');
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stderr, '');
});

t.test('nothing installed: one line naming every program and the packages to install', async (t) => {
  const run = preflight(pathWith([]));
  t.equal(run.status, 1);
  const lines = run.stderr.trim().split('\n');
  t.equal(lines.length, 1, run.stderr);
  t.match(lines[0], /redis-server, redis-cli, chromium/);
  t.match(lines[0], /apt-get install redis-server redis-tools chromium/);
});

t.test('only chromium missing: the line names just chromium; --missing-packages lists it for .ci/run', async (t) => {
  const path = pathWith(['redis-server', 'redis-cli']);
  const run = preflight(path);
  t.equal(run.status, 1);
  t.match(run.stderr, /needs chromium on the PATH \(install: sudo apt-get install chromium\)/);
  t.notMatch(run.stderr, /redis-server/);
  const list = preflight(path, '--missing-packages');
  t.equal(list.status, 0);
  t.equal(list.stdout.trim(), 'chromium');
});
