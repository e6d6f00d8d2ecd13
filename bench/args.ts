/** Command-line options of `npm run bench`. */
import { parseArgs } from 'node:util';

export interface BenchOptions {
  /** Unique bytes of the synthetic state dict. */
  readonly bytes: number;
  readonly items: number;
  readonly ranks: readonly number[];
  /** Use this Redis instead of starting one (then only our own keys are deleted, never FLUSH). */
  readonly redisUrl: string | undefined;
  readonly json: string | undefined;
  readonly quick: boolean;
  /** Item counts of the metadata-scale runs. */
  readonly scaleItems: readonly number[];
  /** Checkpoints in the catalog for the admin API figures. */
  readonly catalogEntries: number;
  /** autocannon duration (seconds). */
  readonly apiSeconds: number;
  /** Bytes of the chunk-size/concurrency sweep of the raw baselines. */
  readonly sweepBytes: number;
  /** Interleaved rounds of (raw SET/GET, 1-rank save/load) whose medians are the steady headline figures. */
  readonly rounds: number;
  /** Skip parts (comma list: scale, api, redis-benchmark, cold, reshard, unix, recycle, async). */
  readonly skip: ReadonlySet<string>;
  /**
   * Run only this part ("async": the async save figures; "incremental": incremental saves; "tracing": the tracing
   * channels' cost; "cluster": Redis Cluster vs standalone; "load": the 1-rank steady save/load against raw SET and raw GET, fresh and warm, in interleaved rounds; "api": the admin API figures, catalog pages alone, beside a save loop, a recycling save loop and a save loop paced by maxBytesPerSecond, with Redis' own PING latency from another process).
   */
  readonly only: (typeof ONLY_PARTS)[number] | undefined;
}

const ONLY_PARTS = ['async', 'incremental', 'tracing', 'cluster', 'load', 'api'] as const;

export const USAGE = `usage: npm run bench -- [--quick] [--bytes 1GiB] [--items 1000] [--ranks 1,2,4]
  [--redis-url redis://host:port] [--json FILE] [--scale-items 1000,10000,50000]
  [--catalog 10000] [--api-seconds 5] [--rounds 3] [--skip scale,api,redis-benchmark,cold,reshard,unix,recycle,async,manager,incremental,tracing,cluster]
  [--only async|incremental|tracing|cluster|load|api]`;

/** "1GiB", "32MiB", "512k" (binary), "1GB" (decimal), "1e9" → bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*([\d.e+]+)\s*([kmgt]?)(i?)(b?)\s*$/i.exec(text);
  if (!m) throw new Error(`not a byte size: ${JSON.stringify(text)}`);
  const unit = m[2]!.toLowerCase();
  // "GiB" and a bare "G" are binary; "GB" is decimal.
  const base = m[3] || !m[4] ? 1024 : 1000;
  const power = ' kmgt'.indexOf(unit === '' ? ' ' : unit);
  const value = Number(m[1]) * base ** power;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`not a byte size: ${JSON.stringify(text)}`);
  return Math.floor(value);
}

function parseList(text: string, what: string): number[] {
  const list = text.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isSafeInteger(n) || n <= 0)) throw new Error(`${what}: expected a comma list of positive integers, got ${JSON.stringify(text)}`);
  return list;
}

function usageError(message: string): never {
  throw new Error(message);
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      bytes: { type: 'string' },
      items: { type: 'string' },
      ranks: { type: 'string' },
      'redis-url': { type: 'string' },
      json: { type: 'string' },
      'scale-items': { type: 'string' },
      catalog: { type: 'string' },
      'api-seconds': { type: 'string' },
      rounds: { type: 'string' },
      skip: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const bytes = values.bytes !== undefined ? parseBytes(values.bytes) : quick ? 32 << 20 : 1 << 30;
  return {
    bytes,
    items: values.items !== undefined ? parseList(values.items, '--items')[0]! : 1000,
    ranks: values.ranks !== undefined ? parseList(values.ranks, '--ranks') : quick ? [1, 2] : [1, 2, 4],
    redisUrl: values['redis-url'],
    json: values.json,
    quick,
    scaleItems: values['scale-items'] !== undefined ? parseList(values['scale-items'], '--scale-items') : quick ? [1000, 5000] : [1000, 10000, 50000],
    catalogEntries: values.catalog !== undefined ? parseList(values.catalog, '--catalog')[0]! : quick ? 500 : 10000,
    apiSeconds: values['api-seconds'] !== undefined ? Number(values['api-seconds']) : quick ? 1 : 5,
    sweepBytes: Math.min(bytes, quick ? 16 << 20 : 256 << 20),
    rounds: values.rounds !== undefined ? parseList(values.rounds, '--rounds')[0]! : quick ? 1 : 3,
    skip: new Set((values.skip ?? '').split(',').filter(Boolean)),
    only: values.only === undefined ? undefined : ONLY_PARTS.find((p) => p === values.only) ?? usageError(`--only: unknown part ${JSON.stringify(values.only)} (known: ${ONLY_PARTS.join(', ')})`),
  };
}
