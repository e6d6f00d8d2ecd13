/** Runs TypeScript fixtures as separate node processes (real OS processes, real sockets). */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** What tsconfig.test-build.json compiles or `npm run build:test` copies (test/helpers: only what fixtures import). */
const COMPILED_DIRS = ['src', 'routes', 'bench', 'test/fixtures'];
const STAMP = 'dist-test/.built';

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(join(repoRoot, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(join(repoRoot, path)).mtimeMs);
  }
  return newest;
}

let compiledFresh: boolean | undefined;
/** dist-test/ was built after the last change to anything it compiles or copies. */
function compiledIsFresh(): boolean {
  if (compiledFresh === undefined) {
    try {
      const built = statSync(join(repoRoot, STAMP)).mtimeMs;
      const helperDir = join(repoRoot, 'dist-test/test/helpers');
      const helpers = existsSync(helperDir) ? readdirSync(helperDir).filter((f) => f.endsWith('.js')) : [];
      const newest = Math.max(...COMPILED_DIRS.map(newestSource), ...helpers.map((f) => statSync(join(repoRoot, 'test/helpers', f.replace(/\.js$/, '.ts'))).mtimeMs));
      compiledFresh = newest <= built;
    } catch {
      compiledFresh = false; // never built, or a compiled helper's source is gone
    }
    if (!compiledFresh) console.error('child processes run their .ts through tsx: dist-test/ is missing or older than the sources (npm run build:test)');
  }
  return compiledFresh;
}

/**
 * The node arguments that run the TypeScript entry point `entry` (a path from the repo root,
 * e.g. 'test/fixtures/rank.ts', 'src/cli/main.ts') as a child process: its JavaScript in
 * dist-test/ when that is up to date (no TypeScript compiled per process), else the .ts
 * through tsx (a single test file run without `npm run build:test` after an edit).
 */
export function nodeArgs(entry: string): string[] {
  if (compiledIsFresh()) return [join(repoRoot, 'dist-test', entry.replace(/\.ts$/, '.js'))];
  return ['--import', 'tsx', join(repoRoot, entry)];
}

export interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The last line of stdout parsed as JSON, if any. */
  readonly json: Record<string, unknown> | undefined;
}

export interface RunningChild {
  readonly process: ChildProcess;
  readonly done: Promise<ChildResult>;
  /** Resolves when stdout contains `text`; rejects (with the child's output) if it exits without printing it. */
  waitFor(text: string): Promise<void>;
}

export function startFixture(fixture: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): RunningChild {
  const child = spawn(process.execPath, [...nodeArgs(fixture), ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ text: string; resolve: () => void; reject: (err: Error) => void }> = [];
  let closed = false;
  const neverPrinted = (text: string) => new Error(`the child exited without printing "${text}":\n${stdout}${stderr}`);
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiters.splice(0)) (stdout.includes(w.text) ? w.resolve() : waiters.push(w));
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<ChildResult>((resolve) => {
    child.on('close', (code, signal) => {
      closed = true;
      for (const w of waiters.splice(0)) (stdout.includes(w.text) ? w.resolve() : w.reject(neverPrinted(w.text)));
      const last = stdout.trim().split('\n').at(-1);
      let json: Record<string, unknown> | undefined;
      try {
        json = last ? (JSON.parse(last) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, json });
    });
  });
  return {
    process: child,
    done,
    waitFor: (text) =>
      new Promise<void>((resolve, reject) => {
        if (stdout.includes(text)) resolve();
        else if (closed) reject(neverPrinted(text));
        else waiters.push({ text, resolve, reject });
      }),
  };
}

let rankGroupSeq = 0;

/**
 * `world` rank processes (test/fixtures/rank.ts) that save or load `id` on the Redis at
 * `url` as one RedisProcessGroup (a fresh group id each call). `env` is per rank.
 */
export function startRanks(url: string, mode: 'save' | 'load', id: string, world: number, env: (rank: number) => NodeJS.ProcessEnv = () => ({}), timeoutMs = 6000): RunningChild[] {
  const groupId = `ranks-${process.pid}-${rankGroupSeq++}`;
  return Array.from({ length: world }, (_, rank) => startFixture('test/fixtures/rank.ts', [mode, url, id, String(rank), String(world), groupId, String(timeoutMs)], env(rank)));
}

/** Every child's result. */
export const allDone = (children: readonly RunningChild[]): Promise<ChildResult[]> => Promise.all(children.map((c) => c.done));
