/**
 * The layers of README "Architecture", checked on the import statements of every source
 * file: which folder may import which, and no cycle between folders.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import t from 'tap';
import { shippedSourceFiles } from './helpers/source-files.js';

const root = resolve(new URL('..', import.meta.url).pathname);

/**
 * folder → the folders it may import (besides itself). The arrows go one way. src/async
 * (the asyncSave worker thread) belongs to the core's layer: it knows nothing of Redis.
 */
const ALLOWED: Record<string, readonly string[]> = {
  'src/core': ['src/async'],
  'src/async': ['src/core'],
  'src/redis': ['src/core', 'src/async'],
  'src/group': ['src/core', 'src/async', 'src/redis'],
  'src/manager': ['src/core', 'src/async', 'src/redis', 'src/group'],
  routes: ['src/core', 'src/redis'],
  'src/observe': ['src/core'],
  'src/server': ['src/core', 'src/redis', 'routes', 'src/observe'],
  'src/cli': ['src/core', 'src/redis', 'src/server', 'src/manager'],
};
const LAYERS = Object.keys(ALLOWED);

function layerOf(path: string): string | undefined {
  const rel = relative(root, path);
  return LAYERS.filter((l) => rel === l || rel.startsWith(`${l}/`)).sort((a, b) => b.length - a.length)[0];
}

const edges = new Map<string, Set<string>>();
const offences: string[] = [];
for (const file of shippedSourceFiles()) {
  const from = layerOf(file);
  if (!from) continue;
  for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'";]*?from\s+'(\.[^']+)'/gm)) {
    const to = layerOf(resolve(dirname(file), m[1]!));
    if (!to || to === from) continue;
    if (!edges.has(from)) edges.set(from, new Set());
    edges.get(from)!.add(to);
    if (!ALLOWED[from]!.includes(to)) offences.push(`${relative(root, file)} (${from}) imports ${m[1]} (${to})`);
  }
}

t.test('every import between folders follows an allowed arrow', async (t) => {
  t.same(offences, []);
  t.ok(edges.size >= 4, 'the check saw imports between folders');
});

t.test('no cycle between folders (routes → server or server → routes, not both)', async (t) => {
  const cycles: string[] = [];
  const visit = (node: string, path: string[]) => {
    for (const next of edges.get(node) ?? []) {
      if (path.includes(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(' → '));
      else visit(next, [...path, next]);
    }
  };
  for (const layer of LAYERS) visit(layer, [layer]);
  // core and async are one layer split in two folders: a cycle between just them is not between layers.
  t.same(cycles.filter((c) => !/^src\/(core|async) → src\/(core|async) → src\/(core|async)$/.test(c)), []);
});

t.test('small files: no source file in src/ or routes/ is over 350 lines', async (t) => {
  const long = shippedSourceFiles()
    .map((file) => [relative(root, file), readFileSync(file, 'utf8').split('\n').length - 1] as const)
    .filter(([, lines]) => lines > 350);
  t.same(long, [], 'split by responsibility what grows past 350 lines');
});
