/**
 * Runs one protocol step on every rank and turns any rank's failure into the same
 * CheckpointError on all ranks (DCP's _DistWrapper). A failing rank still takes part
 * in every collective, so no rank waits for one that gave up.
 */
import type { ProcessGroup } from './process-group.js';
import { CheckpointError, DcpValueError, errorFromWire, errorToWire, isWireError, type WireError } from './errors.js';

type Outcome<T> = { readonly ok: T } | { readonly err: WireError };

/** What the coordinator sends back when a step failed anywhere. */
interface StepFailure {
  readonly failedStep: string;
  readonly failures: ReadonlyArray<readonly [number, WireError]>;
}

/** The coordinator could not collect every rank's outcome. */
interface GatherFailed {
  readonly gatherFailed: WireError;
}

function isStepFailure(value: unknown): value is StepFailure {
  return typeof value === 'object' && value !== null && typeof (value as StepFailure).failedStep === 'string' && Array.isArray((value as StepFailure).failures);
}

async function attempt<T>(fn: () => T | Promise<T>): Promise<{ outcome: Outcome<T>; error?: unknown }> {
  try {
    return { outcome: { ok: await fn() } };
  } catch (error) {
    return { outcome: { err: errorToWire(error) }, error };
  }
}

export class DistWrapper {
  readonly rank: number;
  readonly worldSize: number;
  readonly isCoordinator: boolean;
  /** This rank's own errors, so the CheckpointError it throws keeps the original instances. */
  private readonly ownErrors = new Map<string, unknown>();

  constructor(
    private readonly group: ProcessGroup | undefined,
    readonly coordinatorRank = 0,
  ) {
    this.rank = group?.rank ?? 0;
    this.worldSize = group?.worldSize ?? 1;
    if (!Number.isInteger(coordinatorRank) || coordinatorRank < 0 || coordinatorRank >= this.worldSize) {
      throw new DcpValueError('DCP_VALUE_ERROR', `coordinatorRank ${coordinatorRank} is outside the group (world size ${this.worldSize})`);
    }
    this.isCoordinator = this.rank === coordinatorRank;
  }

  /** map on every rank → gather → reduce on the coordinator → scatter one result per rank. */
  async reduceScatter<T, R>(step: string, map: () => T | Promise<T>, reduce: (all: T[]) => R[] | Promise<R[]>): Promise<R> {
    const local = await this.run(step, map);
    const all = await this.gatherToCoordinator(step, local);
    let results: Array<R | StepFailure> | undefined;
    if (this.isCoordinator) {
      const outcome = await this.reduceOnCoordinator(step, all!, reduce);
      results = 'failure' in outcome ? new Array(this.worldSize).fill(outcome.failure) : outcome.value;
      if (results.length !== this.worldSize) {
        const failure = this.failureOf(step, [[this.rank, errorToWire(new DcpValueError('DCP_VALUE_ERROR', `global plan has ${results.length} plans for ${this.worldSize} ranks`))]]);
        results = new Array(this.worldSize).fill(failure);
      }
      if (isStepFailure(results[0])) return this.shareFailure(results[0], () => this.scatter(results));
    }
    const mine = await this.collective(step, () => this.scatter(results));
    return this.unwrap(mine);
  }

  /** map on every rank → gather → reduce on the coordinator → broadcast the one result. */
  async allReduce<T, R>(step: string, map: () => T | Promise<T>, reduce: (all: T[]) => R | Promise<R>): Promise<R> {
    const local = await this.run(step, map);
    const all = await this.gatherToCoordinator(step, local);
    let result: R | StepFailure | undefined;
    if (this.isCoordinator) {
      const outcome = await this.reduceOnCoordinator(step, all!, reduce);
      if ('failure' in outcome) return this.shareFailure(outcome.failure, () => this.broadcast(outcome.failure));
      result = outcome.value;
    }
    const shared = await this.collective(step, () => this.broadcast(result));
    return this.unwrap(shared);
  }

  /** map on every rank, then every rank learns every result (or the same failure). */
  async allGather<T>(step: string, map: () => T | Promise<T>): Promise<T[]> {
    const local = await this.run(step, map);
    const all = await this.collective(step, () => (this.group ? this.group.allGather(local) : Promise.resolve([local])));
    const failures = this.failuresIn(all);
    if (failures.length > 0) throw this.toCheckpointError(this.failureOf(step, failures));
    return all.map((o) => (o as { ok: T }).ok);
  }

  private async run<T>(step: string, map: () => T | Promise<T>): Promise<Outcome<T>> {
    const { outcome, error } = await attempt(map);
    if ('err' in outcome) this.ownErrors.set(step, error);
    return outcome;
  }

  /**
   * Gathers every rank's outcome on the coordinator. When the gather itself fails there
   * (a rank died, the timeout passed), the coordinator records that as its own failure
   * and still tells the live ranks, so they fail now with the same error instead of
   * waiting out their own timeouts.
   */
  private async gatherToCoordinator<T>(step: string, local: Outcome<T>): Promise<Outcome<T>[] | GatherFailed | undefined> {
    if (!this.isCoordinator) return this.collective(step, () => this.gather(local));
    try {
      return await this.gather(local);
    } catch (error) {
      this.ownErrors.set(step, error);
      return { gatherFailed: errorToWire(error) };
    }
  }

  /** Sends a failure to the other ranks (best effort: some may be gone) and throws it here. */
  private async shareFailure(failure: StepFailure, send: () => Promise<unknown>): Promise<never> {
    await send().catch(() => {});
    throw this.toCheckpointError(failure);
  }

  private async reduceOnCoordinator<T, R>(step: string, all: Outcome<T>[] | GatherFailed, reduce: (all: T[]) => R | Promise<R>): Promise<{ value: R } | { failure: StepFailure }> {
    if ('gatherFailed' in all) return { failure: this.failureOf(step, [[this.rank, all.gatherFailed]]) };
    const failures = this.failuresIn(all);
    if (failures.length === 0) {
      const { outcome, error } = await attempt(() => reduce(all.map((o) => (o as { ok: T }).ok)));
      if ('ok' in outcome) return { value: outcome.ok };
      this.ownErrors.set(step, error);
      failures.push([this.rank, outcome.err]);
    }
    return { failure: this.failureOf(step, failures) };
  }

  private failuresIn<T>(all: Outcome<T>[]): Array<[number, WireError]> {
    const failures: Array<[number, WireError]> = [];
    all.forEach((o, rank) => {
      if ('err' in o) failures.push([rank, o.err]);
    });
    return failures;
  }

  private failureOf(step: string, failures: Array<[number, WireError]>): StepFailure {
    return { failedStep: step, failures };
  }

  /** A collective that itself fails (timeout, lost connection) fails this rank's step. */
  private async collective<X>(step: string, fn: () => Promise<X>): Promise<X> {
    try {
      return await fn();
    } catch (error) {
      throw new CheckpointError(step, new Map([[this.rank, error instanceof Error ? error : new Error(String(error))]]));
    }
  }

  private unwrap<R>(value: R | StepFailure): R {
    if (isStepFailure(value)) throw this.toCheckpointError(value);
    return value;
  }

  private toCheckpointError(failure: StepFailure): CheckpointError {
    const failures = new Map<number, Error>();
    for (const [rank, wire] of failure.failures) {
      const own = rank === this.rank ? this.ownErrors.get(failure.failedStep) : undefined;
      failures.set(rank, own instanceof Error ? own : isWireError(wire) ? errorFromWire(wire) : new Error(String(wire)));
    }
    return new CheckpointError(failure.failedStep, failures);
  }

  private gather<T>(value: Outcome<T>): Promise<Outcome<T>[] | undefined> {
    return this.group ? this.group.gather(value, this.coordinatorRank) : Promise.resolve([value]);
  }

  private scatter<R>(values: Array<R | StepFailure> | undefined): Promise<R | StepFailure> {
    return this.group ? this.group.scatter(values, this.coordinatorRank) : Promise.resolve(values![0]!);
  }

  private broadcast<R>(value: R | StepFailure | undefined): Promise<R | StepFailure> {
    return this.group ? this.group.broadcast(value, this.coordinatorRank) : Promise.resolve(value as R | StepFailure);
  }
}
