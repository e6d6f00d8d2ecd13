// Node module hooks that run the TypeScript test files (and the src/ they import) under tap:
// each .ts file is transpiled once with TypeScript's transpileModule (type-stripping only,
// as tap's default ts-node loader does with TS_NODE_TRANSPILE_ONLY) and kept in
// node_modules/.cache/redis-dcp-ts/, keyed by its path, its text, tsconfig.json and the
// TypeScript version. A test process whose files are all in the cache never loads the
// compiler: ts-node compiled every file again in each of the ~60 test processes.
// Inline source maps keep stack traces and coverage on the .ts lines.
// Registered by ts-register.mjs (.taprc node-arg); `npm run typecheck` does the type checking.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../../', import.meta.url));
const cacheDir = join(root, 'node_modules', '.cache', 'redis-dcp-ts');
const tsconfigPath = join(root, 'tsconfig.json');
const tsVersion = JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version;
const tsconfigText = readFileSync(tsconfigPath, 'utf8');
/** Bump when the transpile below changes. */
const LOADER_VERSION = 2;

let ts;
let compilerOptions;
/** The project's compiler options (tsconfig.json), emitting ES modules with inline source maps. */
function transpile(source, path) {
  if (!ts) {
    ts = require('typescript');
    const { config } = ts.readConfigFile(tsconfigPath, ts.sys.readFile);
    const { options } = ts.convertCompilerOptionsFromJson(config.compilerOptions, root);
    // No outDir/rootDir: the source map must name the .ts file itself (sources relative to it), not a path under dist/.
    const { outDir, rootDir, sourceRoot, mapRoot, ...kept } = options;
    compilerOptions = { ...kept, module: ts.ModuleKind.ESNext, sourceMap: false, inlineSourceMap: true, inlineSources: true, declaration: false, noEmit: false };
  }
  return ts.transpileModule(source, { fileName: path, compilerOptions }).outputText;
}

const isFile = (path) => {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
};
const tsPath = (url) => (url.startsWith('file:') && /\.ts(?:[?#]|$)/.test(url) ? fileURLToPath(url.replace(/[?#].*$/, '')) : undefined);

/** `./x.js` imported from a .ts file means `./x.ts` when that exists (TypeScript's NodeNext convention). */
export async function resolve(specifier, context, nextResolve) {
  if (context.parentURL && tsPath(context.parentURL) && /^\.\.?\/.*\.js$/.test(specifier)) {
    const url = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (isFile(fileURLToPath(url))) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  const path = tsPath(url);
  if (!path) return nextLoad(url, context);
  const source = readFileSync(path, 'utf8');
  const key = createHash('sha256').update(`${LOADER_VERSION}\0${tsVersion}\0${tsconfigText}\0${path}\0${source}`).digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  let output;
  try {
    output = readFileSync(cached, 'utf8');
  } catch {
    output = transpile(source, path);
    mkdirSync(cacheDir, { recursive: true });
    const temp = `${cached}.${process.pid}.tmp`;
    writeFileSync(temp, output);
    renameSync(temp, cached); // atomic: parallel test processes may write the same entry
  }
  return { format: 'module', source: output, shortCircuit: true };
}
