/** The CLI's operator commands: gc, prune (retention from the command line, the manager's code) and usage. */
import { EXIT_CODES as EXIT } from '../core/error-codes.js';
import { DcpError } from '../core/errors.js';
import type { CheckpointCatalog } from '../redis/catalog.js';
import { checkRetention } from '../manager/retention.js';
import { assertValidRun, prune } from '../manager/run-steps.js';
import type { CommonOptions, Output } from './commands.js';
import { formatBytes, printable, table } from './format.js';

const json = (value: unknown) => JSON.stringify(value, null, 2);

/** "10m", "30s", "2h", "1d", "500ms" or plain milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new DcpError('USAGE', `invalid duration ${JSON.stringify(text.slice(0, 40))} (use e.g. 500ms, 30s, 10m, 2h, 1d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unit;
}

function printResult(io: Output, opts: CommonOptions, verb: string, result: { deleted: string[]; kept: string[] }, dryRun: boolean): void {
  if (opts.json) return io.out(json({ ...result, dryRun }));
  const what = dryRun ? `would delete` : verb;
  io.out(result.deleted.length === 0 ? `nothing to delete (${result.kept.length} kept)` : `${what} ${result.deleted.length}, kept ${result.kept.length}:\n${result.deleted.map((id) => `  ${printable(id)}`).join('\n')}`);
}

export async function gcCommand(catalog: CheckpointCatalog, io: Output, opts: CommonOptions & { prefix?: string; olderThanMs?: number; dryRun: boolean }): Promise<number> {
  const result = await catalog.gc({ dryRun: opts.dryRun, ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.olderThanMs !== undefined ? { incompleteOlderThanMs: opts.olderThanMs } : {}) });
  printResult(io, opts, 'deleted', result, opts.dryRun);
  // Committed checkpoints whose replaced saves a load pin had held (docs/format.md, "Load pins").
  if (!opts.json && result.released) io.out(`${opts.dryRun ? 'would release' : 'released'} the replaced saves of ${result.released.length}:\n${result.released.map((id) => `  ${printable(id)}`).join('\n')}`);
  return EXIT.ok;
}

export async function pruneCommand(catalog: CheckpointCatalog, io: Output, run: string, opts: CommonOptions & { keepLast?: number; keepEvery?: number; dryRun: boolean }): Promise<number> {
  assertValidRun(run);
  if (opts.keepLast === undefined && opts.keepEvery === undefined) throw new DcpError('USAGE', 'prune needs --keep-last N (and optionally --keep-every K)');
  const policy = checkRetention({ ...(opts.keepLast !== undefined ? { keepLast: opts.keepLast } : {}), ...(opts.keepEvery !== undefined ? { keepEvery: opts.keepEvery } : {}) });
  const result = await prune(catalog, run, policy, { dryRun: opts.dryRun });
  printResult(io, opts, 'deleted', result, opts.dryRun);
  if (!opts.json && result.busy.length > 0) io.err(`in use or locked, not deleted: ${result.busy.map(printable).join(', ')}\n`);
  return EXIT.ok;
}

export async function usageCommand(catalog: CheckpointCatalog, io: Output, opts: CommonOptions & { prefix?: string; top?: number }): Promise<number> {
  const usage = await catalog.usage({ ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.top ? { top: opts.top } : {}) });
  if (opts.json) return (io.out(json(usage)), EXIT.ok);
  const max = usage.redis.maxMemory === null ? 'no maxmemory' : `of ${formatBytes(usage.redis.maxMemory)} maxmemory`;
  io.out(`redis:      ${formatBytes(usage.redis.usedMemory)} used ${max}`);
  io.out(`committed:  ${formatBytes(usage.committed.bytes)} in ${usage.committed.checkpoints} checkpoint(s)`);
  io.out(`writing:    ${formatBytes(usage.writing.bytes)} in ${usage.writing.checkpoints}`);
  io.out(`incomplete: ${formatBytes(usage.incomplete.bytes)} in ${usage.incomplete.checkpoints} (redis-dcp gc collects them)`);
  io.out(`pooled:     ${formatBytes(usage.pooled.bytes)} in ${usage.pooled.segments} segment(s)`);
  if (usage.runs.length > 0) {
    io.out('');
    io.out(table(['PREFIX', 'CHECKPOINTS', 'COMMITTED', 'INCOMPLETE'], usage.runs.map((r) => [printable(r.prefix || '(none)'), String(r.checkpoints), formatBytes(r.committedBytes), formatBytes(r.incompleteBytes)])));
  }
  return EXIT.ok;
}
