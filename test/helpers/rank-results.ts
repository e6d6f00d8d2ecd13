/** What ranks report: assertions on the JSON lines rank fixture processes print (test/fixtures/rank.ts, pg-fs-rank.ts), and the failure of an in-process save or load. */
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

/** Undefined when `p` resolves; else rank 0's failure of a CheckpointError (or the error itself), for its code and message. */
export const failureOf = (p: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => ((e as { failures?: Map<number, unknown> }).failures?.get(0) ?? e) as { code?: string; message?: string },
  );
