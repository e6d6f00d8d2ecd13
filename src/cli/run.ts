/**
 * The redis-dcp command line: argument parsing, dispatch, exit codes. The entry point
 * is main.ts; this module has no side effects so it can be imported. It imports only
 * what parsing and error reporting need: a command's modules (the catalog and ioredis, the
 * server) are loaded when it runs, so --help and usage errors start fast (docs/performance.md).
 */
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { ERROR_CODES, EXIT_CODES as EXIT, EXIT_CODE_MEANINGS, type ErrorCode } from '../core/error-codes.js';
import { DcpError } from '../core/errors.js';
import type { CheckpointCatalog } from '../redis/catalog.js';
import { checkpointIdProblem } from '../redis/checkpoint-id.js';
import type { CheckpointState } from '../redis/checkpoint-store.js';
import { ConfigError, loadConfig, type ServerConfig } from '../server/config.js';
import { fromRedisError } from '../redis/errors.js';
import type { Output } from './commands.js';

export const USAGE = `Usage: redis-dcp <command> [options]

Commands:
  ls [ID_PREFIX]         List checkpoints, newest first (--state, --limit N)
  show <id>              Summary and items of one checkpoint
  validate <id>          Check every data key exists with the right length;
                         --deep also verifies every checksum (reads every byte)
  rm <id>                Delete a checkpoint and all its keys
  gc [ID_PREFIX]         Delete incomplete checkpoints (crashed saves) older than
                         --older-than (default 10m: 500ms, 30s, 10m, 2h, 1d); --dry-run
  prune <run>            Apply a retention policy to a CheckpointManager run:
                         --keep-last N [--keep-every K] [--dry-run]
  usage                  Redis memory and what checkpoints hold, per run prefix (--top N)
  serve                  Run the admin API (configured like npm start; --host, --port)

Options:
  --redis-url URL        Redis to use (default: $REDIS_URL or redis://127.0.0.1:6379)
  --prefix PREFIX        Key prefix of the checkpoints (default: $DCP_PREFIX or dcp)
  --json                 Machine-readable output on stdout
  --quiet                No progress on stderr
  -h, --help             This help

Ids containing "/" are written as they are (run1/step-100).

Exit codes:
${Object.entries(EXIT_CODE_MEANINGS).map(([code, meaning]) => `  ${code}  ${meaning}`).join('\n')}
`;


/** A malformed command line (exit code 2, with a hint to --help). */
class UsageError extends DcpError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

const stdio: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(text),
  errIsTTY: process.stderr.isTTY === true,
};

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'redis-url': { type: 'string' },
        prefix: { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        deep: { type: 'boolean', default: false },
        state: { type: 'string' },
        limit: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'older-than': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'keep-last': { type: 'string' },
        'keep-every': { type: 'string' },
        top: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Options that only some commands take. */
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  ls: ['state', 'limit'],
  show: [],
  validate: ['deep'],
  rm: [],
  serve: ['host', 'port'],
  gc: ['older-than', 'dry-run'],
  prune: ['keep-last', 'keep-every', 'dry-run'],
  usage: ['top'],
};

function count(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--${name} must be a positive integer`);
  return Number(text);
}

function checkedId(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UsageError(`${command} takes exactly one checkpoint id`);
  const id = positionals[0]!;
  const problem = checkpointIdProblem(id);
  if (problem) throw new UsageError(`invalid checkpoint id ${JSON.stringify(id.slice(0, 80))}: ${problem}`);
  return id;
}

function configFor(values: ReturnType<typeof parse>['values'], env: NodeJS.ProcessEnv): ServerConfig {
  const overrides: Record<string, string | undefined> = { ...env };
  if (values['redis-url'] !== undefined) overrides.REDIS_URL = values['redis-url'];
  if (values.prefix !== undefined) overrides.DCP_PREFIX = values.prefix;
  if (values.host !== undefined) overrides.HOST = values.host;
  if (values.port !== undefined) overrides.PORT = values.port;
  try {
    return loadConfig(overrides);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.problems.join('; ').replace(/\bREDIS_URL\b/, '--redis-url / REDIS_URL').replace(/\bDCP_PREFIX\b/, '--prefix / DCP_PREFIX'));
    throw err;
  }
}

/** Connects once, failing fast (no endless reconnecting) when nothing answers. */
async function openCatalog(config: ServerConfig): Promise<{ catalog: CheckpointCatalog; client: Redis }> {
  const [{ openClient }, { CheckpointCatalog }] = await Promise.all([import('../redis/connection.js'), import('../redis/catalog.js')]);
  try {
    const client = await openClient(config.redisUrl, { connectTimeoutMs: 3000, retries: 3 });
    return { catalog: new CheckpointCatalog({ redis: client, prefix: config.prefix }), client };
  } catch (err) {
    throw new DcpError('REDIS_UNAVAILABLE', `${(err as Error).message} (set --redis-url or REDIS_URL)`, { cause: err });
  }
}

/** The table's code of any error (Redis client errors translated; anything else INTERNAL_ERROR). */
function codeOf(err: unknown): ErrorCode {
  const translated = fromRedisError(err);
  return translated instanceof DcpError ? translated.code : 'INTERNAL_ERROR';
}

/** The exit code comes from the error-code table. */
function exitCodeOf(err: unknown): number {
  return ERROR_CODES[codeOf(err)].exit;
}

export async function run(argv: string[], io: Output = stdio, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let asJson = argv.includes('--json');
  try {
    const { values, positionals } = parse(argv);
    asJson = values.json;
    const [command, ...rest] = positionals;
    if (values.help || command === 'help') {
      io.out(USAGE);
      return EXIT.ok;
    }
    if (command === undefined) throw new UsageError('no command given');
    const allowed = COMMAND_OPTIONS[command];
    if (!allowed) throw new UsageError(`unknown command ${JSON.stringify(command.slice(0, 40))}`);
    for (const name of ['state', 'limit', 'deep', 'host', 'port', 'older-than', 'dry-run', 'keep-last', 'keep-every', 'top'] as const) {
      if (values[name] !== undefined && values[name] !== false && !allowed.includes(name)) throw new UsageError(`--${name} does not apply to ${command}`);
    }
    const config = configFor(values, env);

    if (command === 'serve') {
      if (rest.length > 0) throw new UsageError('serve takes no arguments');
      const { startServer, createLogger, closeOnSignals } = await import('../server/start.js');
      const log = createLogger(config);
      const server = await startServer(config, log);
      closeOnSignals(server, log);
      return await new Promise<number>(() => {}); // runs until a signal ends the process
    }

    const common = { json: values.json, quiet: values.quiet };
    let state: CheckpointState | undefined;
    if (values.state !== undefined) {
      const { CHECKPOINT_STATES } = await import('../redis/checkpoint-store.js');
      if (!(CHECKPOINT_STATES as readonly string[]).includes(values.state)) throw new UsageError(`--state must be one of ${CHECKPOINT_STATES.join(', ')}`);
      state = values.state as CheckpointState;
    }
    let limit: number | undefined;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!/^\d+$/.test(values.limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
    }
    if ((command === 'ls' || command === 'gc') && rest.length > 1) throw new UsageError(`${command} takes at most one id prefix`);
    if (command === 'usage' && rest.length > 0) throw new UsageError('usage takes no arguments');
    if (command === 'prune' && rest.length !== 1) throw new UsageError('prune takes exactly one run name');
    const id = ['ls', 'gc', 'usage', 'prune'].includes(command) ? undefined : checkedId(rest, command);
    const olderThan = values['older-than'];
    const olderThanMs = olderThan === undefined ? undefined : (await import('./operations.js')).parseDuration(olderThan);
    const operation = { ...common, dryRun: values['dry-run'] };

    const [{ listCommand, removeCommand, showCommand, validateCommand }, { gcCommand, pruneCommand, usageCommand }] = await Promise.all([import('./commands.js'), import('./operations.js')]);
    const { catalog } = await openCatalog(config);
    try {
      switch (command) {
        case 'ls':
          return await listCommand(catalog, io, { ...common, ...(rest[0] ? { idPrefix: rest[0] } : {}), ...(state ? { state } : {}), ...(limit ? { limit } : {}) });
        case 'show':
          return await showCommand(catalog, io, id!, common);
        case 'validate':
          return await validateCommand(catalog, io, id!, { ...common, deep: values.deep });
        case 'gc':
          return await gcCommand(catalog, io, { ...operation, ...(rest[0] ? { prefix: rest[0] } : {}), ...(olderThanMs !== undefined ? { olderThanMs } : {}) });
        case 'prune':
          return await pruneCommand(catalog, io, rest[0]!, { ...operation, keepLast: count('keep-last', values['keep-last']), keepEvery: count('keep-every', values['keep-every']) });
        case 'usage':
          return await usageCommand(catalog, io, { ...common, top: count('top', values.top) });
        default:
          return await removeCommand(catalog, io, id!, common);
      }
    } finally {
      await catalog.close();
      await (catalog.redis as Redis).quit().catch(() => undefined);
    }
  } catch (err) {
    const code = exitCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (asJson) io.err(`${JSON.stringify({ error: { code: codeOf(err), message } })}\n`);
    else io.err(`redis-dcp: ${message}\n${code === EXIT.usage && err instanceof UsageError ? 'Run redis-dcp --help for usage.\n' : ''}`);
    if (code === EXIT.failure && !(fromRedisError(err) instanceof DcpError)) io.err(`${(err as Error)?.stack ?? ''}\n`);
    return code;
  }
}
