#!/usr/bin/env node
// Checks what `npm test` needs from the machine before any test runs, and stops in
// the first second with one line naming what to install. The list is the README's
// "Requirements"; .ci/run installs what `--missing-packages` prints.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** program → Debian package that provides it. */
export const SYSTEM_PACKAGES = { 'redis-server': 'redis-server', 'redis-cli': 'redis-tools', chromium: 'chromium' };
const MIN_NODE_MAJOR = 20;

function onPath(program) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

const missing = Object.entries(SYSTEM_PACKAGES).filter(([program]) => !onPath(program));
if (process.argv.includes('--missing-packages')) {
  // For .ci/run: the Debian packages to install, space-separated (nothing when all are there).
  console.log([...new Set(missing.map(([, pkg]) => pkg))].join(' '));
  process.exit(0);
}
const major = Number(process.versions.node.split('.')[0]);
const problems = [];
if (major < MIN_NODE_MAJOR) problems.push(`Node.js >= ${MIN_NODE_MAJOR} (this is ${process.versions.node})`);
if (missing.length > 0) {
  const programs = missing.map(([program]) => program).join(', ');
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
  problems.push(`${programs} on the PATH (install: sudo apt-get install ${packages})`);
}
if (problems.length > 0) {
  console.error(`npm test needs ${problems.join(' and ')}; see README "The two commands".`);
  process.exit(1);
}
