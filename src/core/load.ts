/**
 * `load`: DCP's load protocol. Every rank reads the metadata and plans its reads,
 * the coordinator may rewrite the plans, then every rank reads in place.
 * Tensors are filled in place; bytes and JSON values are assigned into `stateDict`.
 * Traced on `redis-dcp:load` and reported to `onProgress` (README "Events and progress").
 */
import type { ProcessGroup } from './process-group.js';
import { DefaultLoadPlanner } from './default-planner.js';
import { DistWrapper } from './dist-wrapper.js';
import type { Metadata } from './metadata.js';
import type { LoadPlan, LoadPlanner } from './planner.js';
import { countingTransfers, PhaseClock, ProgressThrottle, type ProgressCallback } from './progress.js';
import type { StateDict } from './state-dict.js';
import type { StorageReader } from './storage.js';
import { resolveReader } from './storage-registry.js';
import { elementSize } from './tensor.js';
import { loadChannel, traced, type LoadEvent, type LoadPhases } from './tracing.js';

export interface LoadOptions {
  /** Where to read. Optional when `checkpointId` names a registered backend (e.g. a redis:// URL). */
  storageReader?: StorageReader;
  checkpointId?: string;
  planner?: LoadPlanner;
  processGroup?: ProcessGroup;
  coordinatorRank?: number;
  /** With the default planner: skip state dict keys the checkpoint lacks instead of failing. */
  allowPartialLoad?: boolean;
  /** Called with this rank's progress at most every ~100 ms, and once at the end (phase "done"). */
  onProgress?: ProgressCallback;
}

const LOAD_PHASES = ['plan', 'read'] as const satisfies ReadonlyArray<keyof LoadPhases>;

export async function load(stateDict: StateDict, options: LoadOptions = {}): Promise<void> {
  const event = (): LoadEvent => ({ checkpointId: options.checkpointId, rank: options.processGroup?.rank ?? 0, worldSize: options.processGroup?.worldSize ?? 1, bytes: 0, phases: { plan: 0, stage: 0, write: 0, commit: 0, read: 0 } });
  return traced(loadChannel, event, async (e) => {
    const clock = e || options.onProgress ? new PhaseClock(LOAD_PHASES, options.onProgress ? new ProgressThrottle(options.onProgress) : undefined) : undefined;
    try {
      await loadNow(stateDict, options, clock);
      clock?.finish();
    } catch (error) {
      clock?.stop();
      throw error;
    } finally {
      if (e && clock) {
        e.bytes = clock.bytesDone;
        Object.assign(e.phases, clock.phases);
      }
    }
  });
}

async function loadNow(stateDict: StateDict, options: LoadOptions, clock: PhaseClock<(typeof LOAD_PHASES)[number]> | undefined): Promise<void> {
  const dist = new DistWrapper(options.processGroup, options.coordinatorRank ?? 0);
  const { reader, owned } = resolveReader(options.storageReader, options.checkpointId);
  const planner = options.planner ?? new DefaultLoadPlanner({ allowPartialLoad: options.allowPartialLoad ?? false });
  let metadata: Metadata | undefined;
  try {
    clock?.enter('plan');
    const centralPlan = await dist.reduceScatter<LoadPlan, LoadPlan>(
      'plan',
      async () => {
        metadata = await reader.readMetadata();
        planner.setUpPlanner(stateDict, metadata, dist.isCoordinator);
        await reader.setUpStorageReader(metadata, dist.isCoordinator, dist.rank, dist.worldSize);
        return reader.prepareLocalPlan(planner.createLocalPlan());
      },
      async (allPlans) => reader.prepareGlobalPlan(planner.createGlobalPlan(allPlans)),
    );
    await dist.allGather('read', async () => {
      const plan = planner.finishPlan(centralPlan);
      if (clock && metadata) clock.bytesTotal = plannedReadBytes(plan, metadata);
      clock?.enter('read');
      await countingTransfers(planner, clock, () => reader.readData(plan, planner));
      return null;
    });
  } finally {
    await reader.endLoad?.().catch(() => {});
    if (owned) await reader.close();
  }
}

/** Bytes a load plan reads into tensors (bytes items are counted as the reader reports them). */
function plannedReadBytes(plan: LoadPlan, metadata: Metadata): number {
  let total = 0;
  for (const item of plan.items) {
    const md = metadata.stateDictMetadata[item.storageIndex.fqn];
    if (md?.type === 'tensor') total += item.lengths.reduce((a, b) => a * b, 1) * elementSize(md.properties.dtype);
  }
  return total;
}
