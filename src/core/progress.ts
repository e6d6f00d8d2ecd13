/**
 * Progress and phase timing of one save or load on one rank (README "Events and progress"):
 * PhaseClock times the phases and counts bytes; ProgressThrottle calls the caller's
 * `onProgress` at most every PROGRESS_INTERVAL_MS (plus one final `done` call). Storage
 * writers and readers report bytes as they move them with `reportTransferred(planner, n)`.
 */

/** Save: plan, stage (asyncSave's copy), write, commit. Load: plan, read. */
export type ProgressPhase = 'plan' | 'stage' | 'write' | 'commit' | 'read' | 'done';

export interface ProgressEvent {
  readonly phase: ProgressPhase;
  /** Bytes of this rank written (save) or read (load) so far. */
  readonly bytesDone: number;
  /** Bytes this rank will write or read (0 until planning is done). */
  readonly bytesTotal: number;
}

export type ProgressCallback = (event: ProgressEvent) => void;

/** Shortest time between two onProgress calls (the final `done` call excepted). */
export const PROGRESS_INTERVAL_MS = 100;

export class ProgressThrottle {
  private last = -Infinity;

  constructor(
    private readonly callback: ProgressCallback,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  update(event: ProgressEvent): void {
    const now = performance.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    this.call(event);
  }

  /** The last call, whatever the time since the previous one. */
  done(bytesDone: number, bytesTotal: number): void {
    this.call({ phase: 'done', bytesDone, bytesTotal });
  }

  private call(event: ProgressEvent): void {
    try {
      this.callback(event);
    } catch {
      // A failing progress callback must not fail the save or load.
    }
  }
}

/** Times the phases of one operation (ms) and counts its bytes; drives the progress callback. */
export class PhaseClock<P extends string> {
  readonly phases: Record<P, number>;
  bytesDone = 0;
  bytesTotal = 0;
  private current: P | undefined;
  private since = performance.now();

  constructor(
    names: readonly P[],
    private readonly progress?: ProgressThrottle,
  ) {
    this.phases = Object.fromEntries(names.map((n) => [n, 0])) as Record<P, number>;
  }

  /** Ends the current phase (its time is added to it) and starts `phase`. */
  enter(phase: P): void {
    this.close();
    this.current = phase;
    this.report();
  }

  /** Adds time spent elsewhere (e.g. in a worker thread) to a phase. */
  add(phase: P, ms: number): void {
    this.phases[phase] += ms;
  }

  /** Progress measured elsewhere (asyncSave's worker thread), passed to the callback as is. */
  forward(event: ProgressEvent): void {
    if (event.phase !== 'done') this.progress?.update(event);
  }

  transferred(bytes: number): void {
    this.bytesDone += bytes;
    this.report();
  }

  /** Ends the last phase; a storage that reported nothing counts as having moved everything. */
  finish(): void {
    this.close();
    this.current = undefined;
    this.bytesDone = Math.max(this.bytesDone, this.bytesTotal);
    this.bytesTotal = this.bytesDone;
    this.progress?.done(this.bytesDone, this.bytesTotal);
  }

  /** Ends the last phase of a failed operation (no `done` progress call). */
  stop(): void {
    this.close();
    this.current = undefined;
  }

  private close(): void {
    const now = performance.now();
    if (this.current !== undefined) this.phases[this.current] += now - this.since;
    this.since = now;
  }

  private report(): void {
    if (this.progress && this.current !== undefined) this.progress.update({ phase: this.current as ProgressPhase, bytesDone: this.bytesDone, bytesTotal: Math.max(this.bytesTotal, this.bytesDone) });
  }
}

/** Byte counters of the saves and loads running now, by the planner they pass to the storage. */
const sinks = new WeakMap<object, (bytes: number) => void>();

/** Called by a storage writer/reader after moving `bytes` of the plan it got with `planner`. */
export function reportTransferred(planner: object, bytes: number): void {
  sinks.get(planner)?.(bytes);
}

/** Runs `fn` with byte reports for `planner` going to `clock` (when there is one). */
export async function countingTransfers<T>(planner: object, clock: PhaseClock<string> | undefined, fn: () => Promise<T>): Promise<T> {
  if (!clock) return fn();
  sinks.set(planner, (bytes) => clock.transferred(bytes));
  try {
    return await fn();
  } finally {
    sinks.delete(planner);
  }
}
