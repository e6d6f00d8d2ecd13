// `node --import ./test/helpers/ts-register.mjs x.ts`: runs TypeScript through ts-loader.mjs (.taprc node-arg).
import { register } from 'node:module';

register('./ts-loader.mjs', import.meta.url);
// The upload worker thread of asyncSave, started from source, imports this module to run its .ts
// (src/async/upload-thread.ts WORKER_TS_LOADER_ENV) instead of registering tsx: same loader, same cache.
process.env.REDIS_DCP_WORKER_TS_LOADER ??= import.meta.url;
