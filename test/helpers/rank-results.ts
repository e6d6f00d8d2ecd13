/** Assertions on the JSON lines that rank fixture processes print (test/fixtures/rank.ts, pg-fs-rank.ts). */
import type { Test } from 'tap';
import type { ChildResult } from './child.js';

/** Every rank rejected with the same CheckpointError: `step`, and exactly one failure, on `rank`, with this code and message. */
export function assertSameFailure(t: Test, out: ChildResult[], step: string, rank: number, code: string, message: RegExp): void {
  for (const r of out) {
    const json = r.json;
    t.match(json, { ok: false, code: 'CHECKPOINT_FAILED', step }, `rank ${String(json?.rank)}: ${r.stdout}${r.stderr}`);
    t.same(json?.failures, { [rank]: code }, `rank ${String(json?.rank)} sees the failure of rank ${rank} only`);
    t.match((json?.failureMessages as Record<string, string> | undefined)?.[rank], message);
  }
}
