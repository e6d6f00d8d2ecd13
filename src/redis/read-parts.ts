/**
 * The reader's bookkeeping types: which parts of which segments or pieces a load plan needs and
 * where their bytes go (src/redis/reader.ts), the geometry helpers it uses and its reusable receive buffers.
 */
import type { StoredPart } from './layout.js';
import { stridesOf } from '../core/tensor-box.js';

/** A part of an item with its byte span inside the item. */
export interface PartSpan {
  readonly part: StoredPart;
  readonly start: number;
  readonly end: number;
}

/** A read item waiting for its parts. */
export interface PendingItem {
  remaining: number;
  readonly finish: () => void;
}

/** One part a read item needs, and what to do with its verified bytes. */
export interface PartUse {
  readonly fqn: string;
  readonly part: StoredPart;
  readonly apply: (bytes: Buffer) => void;
  /**
   * Where the whole part belongs, when that is one contiguous run of the destination:
   * a GETRANGE of exactly this part is then read straight into it (and verified there).
   */
  readonly into?: Uint8Array;
  readonly item: PendingItem;
}

/** Byte range [start, end) of one key (segment or piece) fetched with one GETRANGE. */
export interface FetchGroup {
  readonly key: string;
  readonly start: number;
  end: number;
  readonly uses: PartUse[];
}

/** Parts closer than this are fetched together (reading the gap is cheaper than a round trip). */
export const COALESCE_GAP = 256 * 1024;

/** Whether a box is one contiguous run in a row-major tensor of `shape`. */
export function isContiguous(shape: readonly number[], lengths: readonly number[]): boolean {
  let d = shape.length - 1;
  while (d > 0 && lengths[d] === shape[d]) d--;
  for (let k = 0; k < d; k++) if (lengths[k] !== 1) return false;
  return true;
}

export function linearOffset(shape: readonly number[], offsets: readonly number[]): number {
  const strides = stridesOf(shape);
  return offsets.reduce((acc, o, d) => acc + o * strides[d]!, 0);
}

/** Reusable receive buffers: memory already touched, so a GETRANGE costs a copy, not page faults. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly keep: number) {}

  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.byteLength;
      if (len >= size && (best < 0 || len < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    return Buffer.allocUnsafeSlow(size);
  }

  /** Keeps the largest buffers: a pool full of small ones would make every large fetch allocate. */
  give(buf: Buffer): void {
    if (this.free.length < this.keep) {
      this.free.push(buf);
      return;
    }
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[smallest]!.byteLength) smallest = i;
    if (this.free.length > 0 && this.free[smallest]!.byteLength < buf.byteLength) this.free[smallest] = buf;
  }
}
