/**
 * The collectives `save`/`load` need, modelled on torch.distributed's object
 * collectives. Every rank must call the same collectives in the same order.
 * Values cross process boundaries as JSON, so they must be JSON-serializable.
 */
export interface ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** Collects one value per rank on `dst` (ordered by rank); other ranks get undefined. */
  gather<T>(value: T, dst: number): Promise<T[] | undefined>;
  /** `src` passes one value per rank; each rank receives its own. */
  scatter<T>(values: T[] | undefined, src: number): Promise<T>;
  /** Every rank receives `src`'s value. */
  broadcast<T>(value: T | undefined, src: number): Promise<T>;
  allGather<T>(value: T): Promise<T[]>;
  barrier(): Promise<void>;
}
