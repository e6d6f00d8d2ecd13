/** The CLI's catalog commands: ls, show, validate, rm. Each prints to `out` and returns its exit code. */
import { EXIT_CODES as EXIT } from '../core/error-codes.js';
import type { CheckpointCatalog, CheckpointSummary } from '../redis/catalog.js';
import type { CheckpointState } from '../redis/checkpoint-store.js';
import { CheckpointNotFoundError } from '../redis/errors.js';
import { formatBytes, formatDate, printable, table } from './format.js';

export { EXIT };

export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal (progress is redrawn in place there). */
  readonly errIsTTY: boolean;
}

export interface CommonOptions {
  readonly json: boolean;
  readonly quiet: boolean;
}

const json = (value: unknown) => JSON.stringify(value, null, 2);

export async function listCommand(catalog: CheckpointCatalog, io: Output, opts: CommonOptions & { idPrefix?: string; state?: CheckpointState; limit?: number }): Promise<number> {
  const items: CheckpointSummary[] = [];
  let cursor: string | undefined;
  const wanted = opts.limit ?? Number.POSITIVE_INFINITY;
  do {
    const page = await catalog.list({ limit: Math.min(1000, wanted - items.length), ...(opts.idPrefix ? { prefix: opts.idPrefix } : {}), ...(opts.state ? { state: opts.state } : {}), ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && items.length < wanted);
  if (opts.json) {
    io.out(json({ items }));
    return EXIT.ok;
  }
  if (items.length === 0) {
    io.out('no checkpoints');
    return EXIT.ok;
  }
  io.out(
    table(
      ['ID', 'STATE', 'CREATED', 'RANKS', 'SIZE', 'STORED', 'DEDUP', 'ITEMS'],
      items.map((c) => [printable(c.id), c.state, formatDate(c.createdAt), String(c.worldSize), formatBytes(c.totalBytes), formatBytes(c.storedBytes), dedupRatio(c.totalBytes, c.storedBytes), String(c.itemCount)]),
    ),
  );
  return EXIT.ok;
}

/** Logical size over the bytes a checkpoint added to Redis: "1.0x" for a full save, "all shared" when it added nothing. */
export function dedupRatio(totalBytes: number, storedBytes: number): string {
  if (totalBytes === 0) return '-';
  return storedBytes === 0 ? 'all shared' : `${(totalBytes / storedBytes).toFixed(1)}x`;
}

export async function showCommand(catalog: CheckpointCatalog, io: Output, id: string, opts: CommonOptions): Promise<number> {
  const details = await catalog.get(id);
  if (opts.json) {
    io.out(json(details));
    return EXIT.ok;
  }
  const lines = [
    `id:         ${printable(details.id)}`,
    `state:      ${details.state}`,
    `created:    ${formatDate(details.createdAt)}`,
    `committed:  ${formatDate(details.committedAt)}`,
    `ranks:      ${details.worldSize}`,
    `size:       ${formatBytes(details.totalBytes)} (${details.totalBytes} bytes)`,
    `stored:     ${formatBytes(details.storedBytes)} (${details.storedBytes} bytes added to Redis; dedup ${dedupRatio(details.totalBytes, details.storedBytes)})`,
    `items:      ${details.itemCount}`,
  ];
  io.out(lines.join('\n'));
  if (details.metadata) {
    const rows = Object.entries(details.metadata.stateDictMetadata)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([fqn, md]) =>
        md.type === 'tensor'
          ? [printable(fqn), 'tensor', md.properties.dtype, `[${md.size.join(', ')}]`, String(md.chunks.length)]
          : [printable(fqn), 'bytes', md.encoding, '-', '-'],
      );
    io.out('');
    io.out(table(['FQN', 'TYPE', 'DTYPE/ENCODING', 'SHAPE', 'CHUNKS'], rows));
  }
  return EXIT.ok;
}

/** Progress on stderr: redrawn in place on a terminal, a line per second otherwise. */
function progressReporter(io: Output, label: string): { update(done: number, total: number): void; finish(): void } {
  let lastLine = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      const text = `${label}: ${done}/${total} data keys (${total === 0 ? 100 : Math.floor((done / total) * 100)}%)`;
      if (io.errIsTTY) {
        io.err(`\r${text}\x1b[K`);
        drawn = true;
      } else if (now - lastLine >= 1000 || done === total) {
        io.err(`${text}\n`);
        lastLine = now;
      }
    },
    finish() {
      if (drawn) io.err('\n');
    },
  };
}

export async function validateCommand(catalog: CheckpointCatalog, io: Output, id: string, opts: CommonOptions & { deep: boolean }): Promise<number> {
  const progress = opts.quiet ? undefined : progressReporter(io, opts.deep ? 'checking checksums' : 'checking lengths');
  let report;
  try {
    report = await catalog.validate(id, { deep: opts.deep, ...(progress ? { onProgress: (done: number, total: number) => progress.update(done, total) } : {}) });
  } finally {
    progress?.finish();
  }
  if (opts.json) io.out(json(report));
  else if (report.ok) io.out(`OK: ${printable(id)} is intact (${opts.deep ? 'every checksum verified' : 'every data key present with the right length; --deep also verifies checksums'})`);
  else {
    io.out(`PROBLEMS: ${printable(id)} has ${report.problems.length} problem(s)`);
    io.out(table(['KIND', 'FQN', 'KEY', 'MESSAGE'], report.problems.map((p) => [p.kind, printable(p.fqn ?? '-'), printable(p.key ?? '-'), printable(p.message)])));
  }
  return report.ok ? EXIT.ok : EXIT.failure;
}

export async function removeCommand(catalog: CheckpointCatalog, io: Output, id: string, opts: CommonOptions): Promise<number> {
  if (!(await catalog.delete(id))) throw new CheckpointNotFoundError(id);
  io.out(opts.json ? json({ id, deleted: true }) : `deleted ${printable(id)}`);
  return EXIT.ok;
}
