/**
 * Every package that shipped code (src/, routes/) imports at run time is a dependency in
 * package.json, not a devDependency: `npm install redis-dcp` installs dependencies only, so a
 * module imported from a devDependency (as @node-rs/xxhash once was) fails to load for users.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve } from 'node:path';
import t from 'tap';

const root = resolve(new URL('..', import.meta.url).pathname);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** `lodash/fp` → lodash, `@scope/name/x` → @scope/name. */
const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

t.test('packages imported at run time by src/ and routes/ are dependencies', async (t) => {
  const missing: string[] = [];
  let seen = 0;
  for (const file of [...sourceFiles(join(root, 'src')), ...sourceFiles(join(root, 'routes'))]) {
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
