/** The TypeScript files the package ships (src/ and routes/), for tests that read the sources (architecture, dependencies, error codes). */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(new URL('../..', import.meta.url).pathname);

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) tsFiles(path, out);
    else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Absolute paths of every .ts file under src/ and routes/. */
export function shippedSourceFiles(): string[] {
  return [...tsFiles(join(repoRoot, 'src')), ...tsFiles(join(repoRoot, 'routes'))];
}
