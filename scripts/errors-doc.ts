/**
 * Renders docs/errors.md from the error-code table (src/core/error-codes.ts).
 * `npm run errors-doc` rewrites the file; test/core/error-codes.test.ts fails when they differ.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ERROR_CODES, EXIT_CODES, EXIT_CODE_MEANINGS } from '../src/core/error-codes.js';

export function renderErrorsDoc(): string {
  const exitNames = Object.fromEntries(Object.entries(EXIT_CODES).map(([name, code]) => [code, name]));
  const rows = Object.entries(ERROR_CODES).map(([code, info]) => `| \`${code}\` | ${info.status} | ${info.exit} (${exitNames[info.exit]}) | ${info.meaning.replace(/\|/g, '\\|')} |`);
  return [
    '# Error codes',
    '',
    '<!-- Generated from src/core/error-codes.ts by `npm run errors-doc`; do not edit by hand. -->',
    '',
    'Every error the library throws on purpose is a `DcpError` (or a subclass) whose `code` is one of these; a wrapped',
    'error is its `cause`. The admin API answers with the HTTP status of the code in an `application/problem+json` body',
    '`{ statusCode, code, error, message }`; the `redis-dcp` CLI exits with the exit code of the code. Errors that',
    'cross ranks keep their original code in `RemoteRankError.remoteCode`.',
    '',
    '| code | HTTP status | CLI exit code | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
    '## CLI exit codes',
    '',
    '| exit code | name | meaning |',
    '|---|---|---|',
    ...Object.entries(EXIT_CODES).map(([name, code]) => `| ${code} | ${name} | ${EXIT_CODE_MEANINGS[code]} |`),
    '',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc());
}
