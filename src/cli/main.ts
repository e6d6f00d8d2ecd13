#!/usr/bin/env node
/**
 * redis-dcp: the command-line tool for checkpoints in Redis (package bin).
 * From source: `npm run cli -- <command>` or `node --import tsx src/cli/main.ts <command>`.
 */
import { run } from './run.js';

process.exitCode = await run(process.argv.slice(2));
