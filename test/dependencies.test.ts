/**
 * Every package that shipped code (src/, routes/) imports at run time is a dependency in
 * package.json, not a devDependency: `npm install redis-dcp` installs dependencies only, so a
 * module imported from a devDependency (as @node-rs/xxhash once was) fails to load for users.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import t from 'tap';
import { repoRoot as root, shippedSourceFiles } from './helpers/source-files.js';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };

/** `lodash/fp` → lodash, `@scope/name/x` → @scope/name. */
const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

t.test('packages imported at run time by src/ and routes/ are dependencies', async (t) => {
  const missing: string[] = [];
  let seen = 0;
  for (const file of shippedSourceFiles()) {
    const text = readFileSync(file, 'utf8');
    // Static imports and re-exports (type-only ones are erased), and dynamic import('…').
    const specifiers = [...text.matchAll(/^(?:import|export)(?!\s+type\s)[^'";]*?from\s+'([^'.][^']*)'/gm), ...text.matchAll(/\bimport\(\s*'([^'.][^']*)'\s*\)/g)].map((m) => m[1]!);
    for (const specifier of specifiers) {
      if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
      seen++;
      const name = packageOf(specifier);
      if (!(name in (pkg.dependencies ?? {}))) missing.push(`${relative(root, file)} imports ${name}`);
    }
  }
  t.ok(seen > 10, `the check saw ${seen} package imports`);
  t.same(missing, [], 'no shipped module imports a package that is not in dependencies');
});
