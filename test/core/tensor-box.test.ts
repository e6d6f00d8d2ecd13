/**
 * copyBoxInto and storageByteRange against naive element-by-element references,
 * on random shapes from a seeded generator.
 */
import t from 'tap';
import { copyBoxInto, storageByteRange, stridesOf } from '../../src/core/tensor-box.js';
import { bytesOf, elementSize, numelOf, Tensor, type DType } from '../../src/core/tensor.js';

/** mulberry32: a small seeded generator, so failures reproduce. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) % n;
  };
}

/** The naive reference: copies element by element, byte by byte. */
function naiveCopy(dest: Tensor, destOffsets: number[], lengths: number[], src: Uint8Array, srcShape: number[], srcOffsets: number[]): void {
  const elem = elementSize(dest.dtype);
  const destBytes = dest.bytes;
  const ds = stridesOf(dest.shape);
  const ss = stridesOf(srcShape);
  const n = numelOf(lengths);
  const ls = stridesOf(lengths);
  for (let i = 0; i < n; i++) {
    let d = 0;
    let s = 0;
    for (let k = 0; k < lengths.length; k++) {
      const c = Math.floor(i / ls[k]!) % lengths[k]!;
      d += (destOffsets[k]! + c) * ds[k]!;
      s += (srcOffsets[k]! + c) * ss[k]!;
    }
    for (let b = 0; b < elem; b++) destBytes[d * elem + b] = src[s * elem + b]!;
  }
}

function randomBytes(n: number, rand: (n: number) => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rand(256);
  return out;
}

const DTYPES_BY_SIZE: DType[] = ['uint8', 'int16', 'float32', 'float64', 'bfloat16', 'int64'];

function randomCase(rand: (n: number) => number, ndim: number) {
  const dtype = DTYPES_BY_SIZE[rand(DTYPES_BY_SIZE.length)]!;
  const lengths = Array.from({ length: ndim }, () => rand(6)); // may be 0
  // Make full-extent dims likely, so contiguous runs get merged.
  const srcShape = lengths.map((l) => (rand(2) === 0 ? l : l + rand(4)));
  const destShape = lengths.map((l) => (rand(2) === 0 ? l : l + rand(4)));
  const srcOffsets = lengths.map((l, d) => rand(srcShape[d]! - l + 1));
  const destOffsets = lengths.map((l, d) => rand(destShape[d]! - l + 1));
  return { dtype, lengths, srcShape, destShape, srcOffsets, destOffsets };
}

t.test('copyBoxInto matches the naive copy for random 1-D, 2-D and 3-D boxes', async (t) => {
  const rand = rng(42);
  let checked = 0;
  for (const ndim of [1, 2, 3, 4]) {
    for (let trial = 0; trial < 300; trial++) {
      const c = randomCase(rand, ndim);
      const elem = elementSize(c.dtype);
      // Odd trials place the source at an odd byte offset (an unaligned view).
      const shift = trial % 2;
      const src = randomBytes(numelOf(c.srcShape) * elem + shift, rand).subarray(shift);
      const fill = randomBytes(numelOf(c.destShape) * elem, rand);
      const actual = new Tensor(c.dtype, c.destShape);
      actual.bytes.set(fill);
      const expected = new Tensor(c.dtype, c.destShape);
      expected.bytes.set(fill);
      naiveCopy(expected, c.destOffsets, c.lengths, src, c.srcShape, c.srcOffsets);
      copyBoxInto({ tensor: actual, offsets: c.destOffsets, lengths: c.lengths }, src, c.srcShape, c.srcOffsets);
      if (Buffer.compare(actual.bytes, expected.bytes) !== 0) {
        t.fail(`${ndim}-D trial ${trial} differs: ${JSON.stringify(c)}`);
        return;
      }
      // The same copy from only the byte range a reader would fetch.
      const range = storageByteRange(c.srcShape, c.srcOffsets, c.lengths, elem);
      const partial = new Tensor(c.dtype, c.destShape);
      partial.bytes.set(fill);
      copyBoxInto({ tensor: partial, offsets: c.destOffsets, lengths: c.lengths }, src.slice(range.start, range.end), c.srcShape, c.srcOffsets, range.start);
      if (Buffer.compare(partial.bytes, expected.bytes) !== 0) {
        t.fail(`${ndim}-D trial ${trial} differs from a partial fetch ${JSON.stringify(range)}: ${JSON.stringify(c)}`);
        return;
      }
      checked++;
    }
  }
  t.equal(checked, 1200, 'all random boxes copied exactly (whole and partial source)');
});

t.test('storageByteRange is the smallest range covering the box', async (t) => {
  const rand = rng(7);
  for (let trial = 0; trial < 500; trial++) {
    const ndim = 1 + rand(3);
    const shape = Array.from({ length: ndim }, () => 1 + rand(6));
    const lengths = shape.map((s) => 1 + rand(s));
    const offsets = shape.map((s, d) => rand(s - lengths[d]! + 1));
    const elem = 1 << rand(4);
    // Reference: min and max touched byte over every element of the box.
    const strides = stridesOf(shape);
    let min = Infinity;
    let max = -Infinity;
    const ls = stridesOf(lengths);
    for (let i = 0; i < numelOf(lengths); i++) {
      let e = 0;
      for (let d = 0; d < ndim; d++) e += (offsets[d]! + (Math.floor(i / ls[d]!) % lengths[d]!)) * strides[d]!;
      min = Math.min(min, e * elem);
      max = Math.max(max, (e + 1) * elem);
    }
    const range = storageByteRange(shape, offsets, lengths, elem);
    if (range.start !== min || range.end !== max) {
      t.fail(`trial ${trial}: ${JSON.stringify({ shape, offsets, lengths, elem, range, min, max })}`);
      return;
    }
  }
  t.pass('500 random boxes');
  t.same(storageByteRange([4, 5], [1, 0], [2, 5], 4), { start: 20, end: 60 }, 'full rows are one contiguous span');
  t.same(storageByteRange([4, 5], [1, 1], [2, 2], 4), { start: 24, end: 52 });
  t.same(storageByteRange([], [], [], 8), { start: 0, end: 8 }, '0-d: one element');
  t.same(storageByteRange([3, 0], [0, 0], [3, 0], 4), { start: 0, end: 0 }, 'empty box: empty range');
  t.throws(() => storageByteRange([4], [2], [3], 4), { code: 'BOX_OUT_OF_BOUNDS' });
  t.throws(() => storageByteRange([4], [0, 0], [1, 1], 4), { code: 'BOX_OUT_OF_BOUNDS' });
});

t.test('0-d tensors, zero-size dims and exact cases', async (t) => {
  const scalar = new Tensor('float64', []);
  copyBoxInto({ tensor: scalar, offsets: [], lengths: [] }, bytesOf(Float64Array.from([3.25])), [], []);
  t.same(scalar.data, Float64Array.from([3.25]));

  const empty = new Tensor('float32', [2, 0, 3]);
  copyBoxInto({ tensor: empty, offsets: [0, 0, 0], lengths: [2, 0, 3] }, new Uint8Array(0), [2, 0, 3], [0, 0, 0]);
  t.equal(empty.byteLength, 0);
  const untouched = new Tensor('int32', [2, 2], Int32Array.from([1, 2, 3, 4]));
  copyBoxInto({ tensor: untouched, offsets: [1, 0], lengths: [0, 2] }, new Uint8Array(0), [5, 2], [5, 0]);
  t.same(untouched.data, Int32Array.from([1, 2, 3, 4]), 'a zero-length box copies nothing');

  // 2-D: rows 1..2, cols 1..2 of a 3x4 source into the top-left of a 2x3 destination.
  const src = Int32Array.from({ length: 12 }, (_, i) => i);
  const dest = new Tensor('int32', [2, 3]);
  copyBoxInto({ tensor: dest, offsets: [0, 0], lengths: [2, 2] }, bytesOf(src), [3, 4], [1, 1]);
  t.same(Array.from(dest.data as Int32Array), [5, 6, 0, 9, 10, 0]);

  // A full-box contiguous copy is a single set; keeps BigInt64 data intact.
  const big = new Tensor('int64', [2, 3], BigInt64Array.from([1n, -2n, 3n, 4n, 5n, -6n]));
  const copy = new Tensor('int64', [2, 3]);
  copyBoxInto({ tensor: copy, offsets: [0, 0], lengths: [2, 3] }, big.bytes, [2, 3], [0, 0]);
  t.same(copy.data, big.data);

  // The source may be an unaligned view into a larger buffer.
  const backing = new Uint8Array(1 + 12);
  backing.set(bytesOf(Float32Array.from([1.5, 2.5, 3.5])), 1);
  const f = new Tensor('float32', [3]);
  copyBoxInto({ tensor: f, offsets: [0], lengths: [3] }, backing.subarray(1), [3], [0]);
  t.same(Array.from(f.data as Float32Array), [1.5, 2.5, 3.5]);
});

t.test('bad boxes are errors, not silent corruption', async (t) => {
  const dest = new Tensor('float32', [4]);
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [2], lengths: [3] }, new Uint8Array(16), [4], [0]), { code: 'BOX_OUT_OF_BOUNDS', message: /destination/ });
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0], lengths: [3] }, new Uint8Array(16), [4], [2]), { code: 'BOX_OUT_OF_BOUNDS', message: /source/ });
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0], lengths: [4] }, new Uint8Array(8), [4], [0]), { code: 'BOX_OUT_OF_BOUNDS', message: /source has 8 bytes/ });
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0], lengths: [2] }, new Uint8Array(8), [4], [2], 4), { code: 'BOX_OUT_OF_BOUNDS' }, 'partial source that misses the box end');
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0], lengths: [2] }, new Uint8Array(16), [4], [0], 4), { code: 'BOX_OUT_OF_BOUNDS' }, 'partial source that starts after the box');
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0, 0], lengths: [1, 1] }, new Uint8Array(16), [4], [0]), { code: 'BOX_OUT_OF_BOUNDS' });
  t.throws(() => copyBoxInto({ tensor: dest, offsets: [0.5], lengths: [1] }, new Uint8Array(16), [4], [0]), { code: 'BOX_OUT_OF_BOUNDS' });
});

t.test('throughput: row blocks of a 64 MiB chunk (reported, loosely bounded)', async (t) => {
  const rowsN = 4096;
  const colsN = 4096;
  const src = new Float32Array(rowsN * colsN);
  for (let i = 0; i < src.length; i += 997) src[i] = i;
  const srcBytes = bytesOf(src);
  // Column half: 4096 runs of 8 KiB each.
  const half = new Tensor('float32', [rowsN, colsN / 2]);
  half.bytes.fill(1);
  let started = performance.now();
  copyBoxInto({ tensor: half, offsets: [0, 0], lengths: [rowsN, colsN / 2] }, srcBytes, [rowsN, colsN], [0, colsN / 2]);
  const colMs = performance.now() - started;
  // Contiguous: one set of 64 MiB.
  const whole = new Tensor('float32', [rowsN, colsN]);
  whole.bytes.fill(1);
  started = performance.now();
  copyBoxInto({ tensor: whole, offsets: [0, 0], lengths: [rowsN, colsN] }, srcBytes, [rowsN, colsN], [0, 0]);
  const wholeMs = performance.now() - started;
  const halfData = half.data as Float32Array;
  let mismatches = 0;
  for (let r = 0; r < rowsN; r += 61) for (let c = 0; c < colsN / 2; c += 7) if (halfData[r * (colsN / 2) + c] !== src[r * colsN + colsN / 2 + c]) mismatches++;
  t.equal(mismatches, 0, 'column half holds the right values');
  t.equal((whole.data as Float32Array)[997 * 5], 997 * 5);
  const gbps = (bytes: number, ms: number): string => (bytes / ms / 1e6).toFixed(2);
  t.comment(`column-half copy: ${colMs.toFixed(1)} ms (${gbps(half.byteLength, colMs)} GB/s); contiguous 64 MiB: ${wholeMs.toFixed(1)} ms (${gbps(whole.byteLength, wholeMs)} GB/s)`);
  t.ok(wholeMs < 2000 && colMs < 2000, 'copies finish well within a second or two even on a busy machine');
});
