/**
 * `npm run openapi`: writes openapi.yaml from the app's route schemas, exactly as the
 * server serves it at /docs/yaml. No Redis needed (the app connects lazily).
 * `--check` exits 1 when the committed file is out of date instead of writing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/server/app.js';

export const OPENAPI_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'openapi.yaml');

/** The document as served at /docs/yaml. */
export async function renderOpenApiYaml(): Promise<string> {
  const app = await buildApp({ redis: 'redis://127.0.0.1:6379' });
  try {
    const res = await app.inject('/docs/yaml');
    if (res.statusCode !== 200) throw new Error(`/docs/yaml answered ${res.statusCode}`);
    return res.body;
  } finally {
    await app.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const yaml = await renderOpenApiYaml();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OPENAPI_FILE, 'utf8');
    } catch {
      // missing counts as out of date
    }
    if (current !== yaml) {
      process.stderr.write('openapi.yaml is out of date: run npm run openapi\n');
      process.exit(1);
    }
    process.stdout.write('openapi.yaml is up to date\n');
  } else {
    writeFileSync(OPENAPI_FILE, yaml);
    process.stdout.write(`wrote ${OPENAPI_FILE} (${yaml.length} bytes)\n`);
  }
}
