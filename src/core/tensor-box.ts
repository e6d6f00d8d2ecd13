/**
 * Copying boxes (hyperrectangles) between row-major tensors stored as bytes. This is
 * the hot path of every load: a read item names a box inside a saved chunk
 * (storageOffsets + lengths) and where it goes in the destination tensor
 * (destOffsets). Copies move the longest contiguous runs at once with
 * `Uint8Array.set`, so a box that is contiguous in both tensors is a single copy.
 */
import { DcpValueError } from './errors.js';
import type { TensorRegion } from './planner.js';
import { elementSize } from './tensor.js';

export interface ByteRange {
  /** First byte (inclusive). */
  readonly start: number;
  /** End byte (exclusive); `start === end` for an empty box. */
  readonly end: number;
}

function checkBox(what: string, shape: readonly number[], offsets: readonly number[], lengths: readonly number[]): void {
  if (offsets.length !== shape.length || lengths.length !== shape.length) {
    throw new DcpValueError('BOX_OUT_OF_BOUNDS', `${what}: box of rank ${offsets.length}/${lengths.length} does not match shape [${shape.join(', ')}]`);
  }
  for (let d = 0; d < shape.length; d++) {
    const o = offsets[d]!;
    const l = lengths[d]!;
    if (!Number.isSafeInteger(o) || !Number.isSafeInteger(l) || o < 0 || l < 0 || o + l > shape[d]!) {
      throw new DcpValueError('BOX_OUT_OF_BOUNDS', `${what}: box offsets [${offsets.join(', ')}] lengths [${lengths.join(', ')}] exceed shape [${shape.join(', ')}]`);
    }
  }
}

/** Row-major element strides of `shape`. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d]!;
  }
  return strides;
}

/**
 * The smallest contiguous byte range of a saved chunk (row-major, `chunkSizes`) that
 * holds the box at `storageOffsets` with `lengths`: from the box's first element to
 * just after its last one. A reader fetches only this range (GETRANGE) and passes
 * `start` to copyBoxInto as `srcByteStart`.
 */
export function storageByteRange(chunkSizes: readonly number[], storageOffsets: readonly number[], lengths: readonly number[], elemSize: number): ByteRange {
  checkBox('storageByteRange', chunkSizes, storageOffsets, lengths);
  for (const l of lengths) if (l === 0) return { start: 0, end: 0 };
  const strides = stridesOf(chunkSizes);
  let first = 0;
  let last = 0;
  for (let d = 0; d < chunkSizes.length; d++) {
    first += storageOffsets[d]! * strides[d]!;
    last += (storageOffsets[d]! + lengths[d]! - 1) * strides[d]!;
  }
  return { start: first * elemSize, end: (last + 1) * elemSize };
}

/** Runs up to this many bytes are copied word by word: cheaper than a subarray + set (measured). */
const SMALL_RUN_BYTES = 64;

/**
 * Copies the box `region.lengths` from `src` into `region.tensor` at `region.offsets`.
 * `src` holds a row-major tensor of shape `srcShape` (same dtype) in which the box
 * starts at `srcOffsets`. When `src` is only a byte range of that tensor (see
 * storageByteRange), `srcByteStart` is the position of `src[0]` in the full tensor.
 * Handles 0-d tensors (one element) and empty boxes (nothing to copy).
 */
export function copyBoxInto(region: TensorRegion, src: Uint8Array, srcShape: readonly number[], srcOffsets: readonly number[], srcByteStart = 0): void {
  const { tensor, offsets: destOffsets, lengths } = region;
  const destShape = tensor.shape;
  const ndim = destShape.length;
  checkBox('copyBoxInto destination', destShape, destOffsets, lengths);
  checkBox('copyBoxInto source', srcShape, srcOffsets, lengths);
  for (const l of lengths) if (l === 0) return;
  const elem = elementSize(tensor.dtype);
  const dest = tensor.bytes;

  // Merge trailing dims that the box spans completely in both tensors into one run.
  let runDims = 1; // how many trailing dims (at least the last) form the run
  let runElems = ndim === 0 ? 1 : lengths[ndim - 1]!;
  for (let d = ndim - 1; d > 0; d--) {
    if (lengths[d] !== srcShape[d] || lengths[d] !== destShape[d]) break;
    runElems *= lengths[d - 1]!;
    runDims++;
  }
  const outerDims = Math.max(0, ndim - runDims);
  const runBytes = runElems * elem;

  const srcStrides = stridesOf(srcShape);
  const destStrides = stridesOf(destShape);
  let srcPos = -srcByteStart;
  let destPos = 0;
  for (let d = 0; d < ndim; d++) {
    srcPos += srcOffsets[d]! * srcStrides[d]! * elem;
    destPos += destOffsets[d]! * destStrides[d]! * elem;
  }

  // Bounds of the whole copy, checked once so the loop can skip per-run checks.
  let srcSpan = runBytes;
  let destSpan = runBytes;
  for (let d = 0; d < outerDims; d++) {
    srcSpan += (lengths[d]! - 1) * srcStrides[d]! * elem;
    destSpan += (lengths[d]! - 1) * destStrides[d]! * elem;
  }
  if (srcPos < 0 || srcPos + srcSpan > src.byteLength) {
    throw new DcpValueError('BOX_OUT_OF_BOUNDS', `copyBoxInto: source has ${src.byteLength} bytes (starting at byte ${srcByteStart} of the chunk) but the box needs bytes ${srcPos + srcByteStart}..${srcPos + srcByteStart + srcSpan}`);
  }
  if (destPos + destSpan > dest.byteLength) throw new DcpValueError('BOX_OUT_OF_BOUNDS', 'copyBoxInto: destination too small for the box');

  // Short runs: copy word by word (aligned 4/2/1-byte words; integer views, so NaN
  // payloads survive). Long runs: one Uint8Array.set each. Positions are in `unit`s.
  const small = runBytes <= SMALL_RUN_BYTES;
  const unit = small ? wordSize(elem, src.byteOffset, srcPos, dest.byteOffset, destPos) : 1;
  const srcView = small ? wordView(src, unit) : src;
  const destView = small ? wordView(dest, unit) : dest;
  const runUnits = runBytes / unit;
  const outer = lengths.slice(0, outerDims);
  const srcStep = srcStrides.slice(0, outerDims).map((x) => (x * elem) / unit);
  const destStep = destStrides.slice(0, outerDims).map((x) => (x * elem) / unit);
  let s = srcPos / unit;
  let t = destPos / unit;

  if (outerDims === 0) {
    dest.set(src.subarray(srcPos, srcPos + runBytes), destPos);
    return;
  }
  if (outerDims === 1) {
    const n = outer[0]!;
    const ss = srcStep[0]!;
    const ts = destStep[0]!;
    if (small) {
      for (let i = 0; i < n; i++, s += ss, t += ts) for (let k = 0; k < runUnits; k++) destView[t + k] = srcView[s + k]!;
    } else {
      for (let i = 0; i < n; i++, s += ss, t += ts) dest.set(src.subarray(s, s + runBytes), t);
    }
    return;
  }

  // Odometer over the outer dims; positions move incrementally.
  const counter = new Array<number>(outerDims).fill(0);
  for (;;) {
    if (small) {
      for (let k = 0; k < runUnits; k++) destView[t + k] = srcView[s + k]!;
    } else {
      dest.set(src.subarray(s, s + runBytes), t);
    }
    let d = outerDims - 1;
    while (d >= 0) {
      counter[d]!++;
      s += srcStep[d]!;
      t += destStep[d]!;
      if (counter[d]! < outer[d]!) break;
      s -= srcStep[d]! * outer[d]!;
      t -= destStep[d]! * outer[d]!;
      counter[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}

/** The largest of 4, 2, 1 that divides the element size and aligns both starting addresses. */
function wordSize(elem: number, srcByteOffset: number, srcPos: number, destByteOffset: number, destPos: number): number {
  for (const w of [4, 2]) {
    if (elem % w === 0 && srcByteOffset % w === 0 && srcPos % w === 0 && destByteOffset % w === 0 && destPos % w === 0) return w;
  }
  return 1;
}

function wordView(bytes: Uint8Array, unit: number): Uint8Array | Uint16Array | Uint32Array {
  if (unit === 4) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  if (unit === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
  return bytes;
}
