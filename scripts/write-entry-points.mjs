#!/usr/bin/env node
// Writes the package's entry points into dist/ after tsc: `redis-dcp` (dist/index.js)
// and `redis-dcp/internal` (dist/internal.js), each re-exporting the compiled module.
import { writeFileSync } from 'node:fs';

for (const name of ['index', 'internal']) {
  const line = `export * from './src/${name}.js';\n`;
  writeFileSync(new URL(`../dist/${name}.js`, import.meta.url), line);
  writeFileSync(new URL(`../dist/${name}.d.ts`, import.meta.url), line);
}
