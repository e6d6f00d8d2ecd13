/**
 * The upload worker thread of asyncSave: receives staged state dicts (SharedArrayBuffer
 * views, no copy) and runs the whole save protocol for each, with its own writer,
 * process group (a derived namespace of the caller's) and Redis connections, rebuilt
 * from their recipes. Replies with the metadata or the error. See docs/format.md,
 * "Async save".
 */
import { parentPort } from 'node:worker_threads';
import { DefaultSavePlanner } from '../core/default-planner.js';
import type { SavePlanner } from '../core/planner.js';
import { saveNow, saveRunFor } from '../core/save.js';
import { stateDictFromEntries } from '../core/staging.js';
import { deserializeError, epochNow, failingPlanner, serializeError, type UploadJob, type UploadReply } from './protocol.js';
import { fromRecipe, type ClosableGroup, type GroupFactory, type PlannerFactory, type WriterFactory } from './recipe.js';

async function plannerFor(job: UploadJob): Promise<SavePlanner> {
  if (job.failure) return failingPlanner(deserializeError(job.failure));
  if (job.planner.kind === 'default') return new DefaultSavePlanner(job.planner.options);
  return (await fromRecipe<PlannerFactory>(job.planner.recipe))(job.planner.recipe.args);
}

/** Runs the save and replies as soon as it is decided; connections are closed after the reply (a dead Redis can make that slow). */
async function upload(job: UploadJob): Promise<void> {
  const startedAtMs = epochNow();
  let group: ClosableGroup | undefined;
  let writer: Awaited<ReturnType<WriterFactory>> | undefined;
  let reply: UploadReply;
  // Progress goes to the caller's thread, which makes the final "done" call itself.
  const run = saveRunFor(true, job.progress ? (progress) => progress.phase !== 'done' && parentPort!.postMessage({ type: 'progress', id: job.id, progress } satisfies UploadReply) : undefined)!;
  try {
    writer = await (await fromRecipe<WriterFactory>(job.writer))(job.writer.args);
    if (job.group) group = await (await fromRecipe<GroupFactory>(job.group))(job.group.args, { namespace: job.namespace });
    const metadata = await saveNow(stateDictFromEntries(job.entries), {
      storageWriter: writer,
      planner: await plannerFor(job),
      ...(job.checkpointId !== undefined ? { checkpointId: job.checkpointId } : {}),
      ...(group ? { processGroup: group } : {}),
      ...(job.coordinatorRank !== undefined ? { coordinatorRank: job.coordinatorRank } : {}),
    }, run);
    reply = { type: 'committed', id: job.id, metadata, times: { startedAtMs, committedAtMs: epochNow(), phases: run.clock.phases, bytes: run.clock.bytesDone } };
  } catch (error) {
    reply = { type: 'failed', id: job.id, error: serializeError(error) };
  }
  parentPort!.postMessage(reply);
  await Promise.allSettled([writer?.close(), group?.close?.()]);
}

parentPort!.on('message', (job: UploadJob) => void upload(job));
