/**
 * The one error-code table drives library errors, HTTP statuses, CLI exit codes and
 * docs/errors.md: every code is complete, every mapping reads the table, and no code
 * outside the table can be raised.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import t from 'tap';
import { repoRoot, shippedSourceFiles } from '../helpers/source-files.js';
import { ERROR_CODES, EXIT_CODES, EXIT_CODE_MEANINGS, isErrorCode, type ErrorCode } from '../../src/core/error-codes.js';
import { USAGE } from '../../src/cli/run.js';
import { CheckpointError, DcpError, DcpValueError, RemoteRankError, errorFromWire, errorToWire } from '../../src/core/errors.js';
import { fromRedisError } from '../../src/redis/errors.js';
import { classifyError, problemBody } from '../../src/server/error-answers.js';
import { renderErrorsDoc } from '../../scripts/errors-doc.js';

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

t.test('every CLI exit code has one meaning, printed by --help and docs/errors.md from the table', async (t) => {
  t.same(Object.keys(EXIT_CODE_MEANINGS).map(Number).sort(), Object.values(EXIT_CODES).slice().sort());
  const doc = renderErrorsDoc();
  for (const code of Object.values(EXIT_CODES)) {
    t.match(USAGE, new RegExp(`\\n  ${code}  ${EXIT_CODE_MEANINGS[code]}\\n`), `--help lists exit ${code}`);
    t.ok(doc.includes(`| ${code} |`) && doc.includes(EXIT_CODE_MEANINGS[code]), `docs/errors.md lists exit ${code}`);
  }
});

t.test('every code has an HTTP status, a CLI exit code and a one-line meaning', async (t) => {
  const exits = new Set<number>(Object.values(EXIT_CODES));
  t.ok(codes.length >= 40, `${codes.length} codes`);
  for (const code of codes) {
    const info = ERROR_CODES[code];
    t.match(code, /^[A-Z][A-Z_]+$/, `${code} is UPPER_SNAKE`);
    t.ok(Number.isInteger(info.status) && info.status >= 400 && info.status <= 599, `${code}: status ${info.status}`);
    t.ok(exits.has(info.exit) && (info.exit as number) !== EXIT_CODES.ok, `${code}: exit ${info.exit}`);
    t.ok(info.meaning.length > 10 && !info.meaning.includes('\n'), `${code}: one-line meaning`);
  }
});

t.test('the admin API answers each code with the status of the table', async (t) => {
  for (const code of codes) {
    const { body, internal } = classifyError(new DcpError(code, `a ${code}`), 'req-1');
    t.same(body, problemBody(code, `a ${code}`));
    t.equal(body.statusCode, ERROR_CODES[code].status, `${code} → ${body.statusCode}`);
    t.equal(internal, false);
  }
  t.equal(classifyError(new Error('a bug'), 'req-2').body.code, 'INTERNAL_ERROR', 'an unexpected error is INTERNAL_ERROR (500)');
});

t.test('a code outside the table cannot be raised', async (t) => {
  t.throws(() => new DcpError('NOT_A_CODE' as ErrorCode, 'x'), TypeError);
  t.throws(() => new DcpValueError('nope' as ErrorCode, 'x'), TypeError);
  t.equal(isErrorCode('CHECKPOINT_NOT_FOUND'), true);
  t.equal(isErrorCode('toString'), false, 'inherited object keys are not codes');
});

t.test('DcpError and DcpValueError share one signature; causes are kept', async (t) => {
  const cause = new Error('socket closed');
  const a = new DcpError('REDIS_UNAVAILABLE', 'down', { cause });
  const b = new DcpValueError('INVALID_LIMIT', 'bad limit', { cause });
  t.equal(a.code, 'REDIS_UNAVAILABLE');
  t.equal(a.cause, cause);
  t.equal(b.code, 'INVALID_LIMIT');
  t.equal(b.cause, cause);
  t.equal(b.info.status, 400);
  t.equal(a.info.exit, EXIT_CODES.noRedis);
});

t.test('errors crossing ranks keep their code; foreign codes become REMOTE_ERROR with remoteCode', async (t) => {
  const ours = errorFromWire(errorToWire(new DcpError('FENCED', 'lost')));
  t.equal((ours as RemoteRankError).code, 'FENCED');
  const foreign = errorFromWire(errorToWire(Object.assign(new Error('boom'), { code: 'INJECTED' }))) as RemoteRankError;
  t.equal(foreign.code, 'REMOTE_ERROR');
  t.equal(foreign.remoteCode, 'INJECTED');
  t.equal(errorToWire(foreign).code, 'INJECTED', 'forwarded again, the original code travels on');
  const wrapped = new CheckpointError('write', new Map([[1, foreign], [0, new Error('first')]]));
  t.equal((wrapped.cause as Error).message, 'first', "CheckpointError's cause is the lowest rank's failure");
});

t.test('Redis client errors are translated in one place', async (t) => {
  const down = fromRedisError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));
  t.match(down, { code: 'REDIS_UNAVAILABLE' });
  const wrongType = fromRedisError(Object.assign(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'), { name: 'ReplyError' }));
  t.match(wrongType, { code: 'STORED_DATA_INVALID' });
  const oom = fromRedisError(Object.assign(new Error("OOM command not allowed when used memory > 'maxmemory'."), { name: 'ReplyError' }));
  t.match(oom, { code: 'REDIS_ERROR', message: /^OOM/ });
  const plain = new Error('not redis');
  t.equal(fromRedisError(plain), plain, 'other errors pass through unchanged');
});

t.test('docs/errors.md is generated from the table (npm run errors-doc)', async (t) => {
  t.equal(readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8'), renderErrorsDoc());
});

/** Every string literal passed as a code to a DcpError constructor in src/ and routes/. */
function literalCodes(): Array<[string, string]> {
  return shippedSourceFiles().flatMap((path) => [...readFileSync(path, 'utf8').matchAll(/new (?:DcpError|DcpValueError)\(\s*'([^']+)'/g)].map((m): [string, string] => [path, m[1]!]));
}

t.test('every code raised in the sources is in the table', async (t) => {
  const found = literalCodes();
  t.ok(found.length > 50, `${found.length} raise sites`);
  for (const [path, code] of found) t.ok(isErrorCode(code), `${code} (${relative(repoRoot, path)})`);
});
