/**
 * The caller's side of the upload worker: one worker thread per process, started on
 * the first background save and kept for the next ones. It keeps the process alive
 * only while an upload runs (so a trainer that returns from main still finishes its
 * save; process.exit() abandons it, leaving an incomplete checkpoint). If the worker
 * dies, every upload it was running rejects with ASYNC_WORKER_FAILED and the next
 * save starts a new one. Runs from dist/ (.js) and from source (.ts): under tsx, or under
 * the loader named by REDIS_DCP_WORKER_TS_LOADER (the test setup's, see startWorker).
 */
import { Worker } from 'node:worker_threads';
import { DcpError } from '../core/errors.js';
import type { Metadata } from '../core/metadata.js';
import type { ProgressCallback } from '../core/progress.js';
import { deserializeError, type UploadJob, type UploadReply, type UploadTimes } from './protocol.js';

interface Waiting {
  readonly resolve: (result: { metadata: Metadata; times: UploadTimes }) => void;
  readonly reject: (error: Error) => void;
  readonly onProgress: ProgressCallback | undefined;
}

/**
 * Environment variable: the URL of a module that, imported first in the worker thread, makes
 * it able to import .ts files. Used only when running from source; without it the worker
 * registers tsx. test/helpers/ts-register.mjs (the tests' TypeScript loader, .taprc node-arg)
 * sets it to itself, so the worker transpiles through the same cached loader as its test
 * process instead of loading tsx (esbuild) as well: 0.2-0.5 s less per worker started.
 */
const WORKER_TS_LOADER_ENV = 'REDIS_DCP_WORKER_TS_LOADER';

/** From source (.ts) the worker registers a TypeScript loader itself: loader flags are not inherited by worker threads on every Node version. */
function startWorker(): Worker {
  // The caller's Node flags, minus those only valid for a main script given as a string (node --input-type=module -e ...).
  const execArgv = process.execArgv.filter((arg) => !arg.startsWith('--input-type'));
  const fromSource = import.meta.url.endsWith('.ts');
  if (!fromSource) return new Worker(new URL('./upload-worker.js', import.meta.url), { execArgv });
  const entry = new URL('./upload-worker.ts', import.meta.url).href;
  const loader = process.env[WORKER_TS_LOADER_ENV];
  const register = loader ? `await import(${JSON.stringify(loader)});` : `const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}); register();`;
  const bootstrap = `${register} await import(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { eval: true, execArgv, type: 'module' } as ConstructorParameters<typeof Worker>[1]);
}

class UploadThread {
  private worker: Worker | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  run(job: Omit<UploadJob, 'type' | 'id' | 'progress'>, onProgress?: ProgressCallback): Promise<{ metadata: Metadata; times: UploadTimes }> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    const result = new Promise<{ metadata: Metadata; times: UploadTimes }>((resolve, reject) => this.waiting.set(id, { resolve, reject, onProgress }));
    worker.ref();
    worker.postMessage({ ...job, type: 'save', id, progress: onProgress !== undefined } satisfies UploadJob);
    return result;
  }

  /** Ends the worker now (uploads in flight reject with ASYNC_WORKER_FAILED). For tests and shutdown. */
  async terminate(): Promise<void> {
    await this.worker?.terminate();
  }

  private start(): Worker {
    const worker = startWorker();
    worker.on('message', (reply: UploadReply) => {
      if (reply.type === 'progress') return this.waiting.get(reply.id)?.onProgress?.(reply.progress);
      const waiting = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) worker.unref();
      if (!waiting) return;
      if (reply.type === 'committed') waiting.resolve({ metadata: reply.metadata, times: reply.times });
      else waiting.reject(deserializeError(reply.error));
    });
    worker.on('error', (error) => this.lost(worker, `the upload worker thread failed: ${error.message}`, error));
    worker.on('exit', (code) => this.lost(worker, `the upload worker thread exited (code ${code})`));
    return worker;
  }

  private lost(worker: Worker, message: string, cause?: unknown): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(new DcpError('ASYNC_WORKER_FAILED', `${message} before reporting; the checkpoint is committed only if the catalog lists it so (normally it is incomplete)`, { cause }));
  }
}

export const uploadThread = new UploadThread();
