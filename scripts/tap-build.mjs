#!/usr/bin/env node
// pretest: rebuilds tap's Test class when it still holds the @tapjs/typescript plugin that .taprc
// removes (a fresh `npm ci` builds tap's default plugin list). tap would rebuild on its own, but
// only after it has computed the node arguments of that run's test processes: the first `npm test`
// after an install would still load ts-node in every test file.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = readFileSync(fileURLToPath(import.meta.resolve('@tapjs/test/test-built')), 'utf8');
const signature = /export const signature = `([^`]*)`/.exec(built)?.[1] ?? '';
if (signature.split('\n').includes('@tapjs/typescript')) execFileSync('tap', ['build'], { stdio: 'inherit' });
