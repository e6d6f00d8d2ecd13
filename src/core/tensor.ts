import { DcpValueError } from './errors.js';

/** Element types, named as in torch (`torch.float32` → "float32"). */
export const DTYPES = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'] as const;
export type DType = (typeof DTYPES)[number];

/** The typed array that holds each dtype (float16/bfloat16 as raw 16-bit words, bool as 0/1 bytes). */
export interface DTypeArrays {
  float64: Float64Array;
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}
export type TensorData = DTypeArrays[DType];

interface TypedArrayCtor {
  readonly BYTES_PER_ELEMENT: number;
  new (length: number): TensorData;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
}

const ARRAY_CTORS: Record<DType, TypedArrayCtor> = {
  float64: Float64Array,
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as unknown as Record<DType, TypedArrayCtor>;

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function elementSize(dtype: DType): number {
  return ARRAY_CTORS[dtype].BYTES_PER_ELEMENT;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function assertShape(shape: readonly number[], what = 'shape'): void {
  if (!Array.isArray(shape)) throw new DcpValueError('DCP_VALUE_ERROR', `${what} must be an array of non-negative integers`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new DcpValueError('DCP_VALUE_ERROR', `${what} must be an array of non-negative integers, got [${shape.join(', ')}]`);
  }
}

/** Wraps raw little-endian bytes as the dtype's typed array, without copying when aligned. */
export function typedArrayFromBytes<D extends DType>(dtype: D, bytes: Uint8Array): DTypeArrays[D] {
  const size = elementSize(dtype);
  if (bytes.byteLength % size !== 0) throw new DcpValueError('DCP_VALUE_ERROR', `byte length ${bytes.byteLength} is not a multiple of ${dtype} element size ${size}`);
  const Ctor = ARRAY_CTORS[dtype];
  if (bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size) as DTypeArrays[D];
  const copy = new Uint8Array(bytes);
  return new Ctor(copy.buffer, 0, copy.byteLength / size) as DTypeArrays[D];
}

/** Byte view of a typed array (no copy). */
export function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A dense, row-major, contiguous tensor on the host. `data` is the storage: loads
 * write into it in place, saves read it without copying.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DTypeArrays[D];

  constructor(dtype: D, shape: readonly number[], data?: DTypeArrays[D]) {
    if (!isDType(dtype)) throw new DcpValueError('DCP_VALUE_ERROR', `Unsupported dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(', ')}`);
    assertShape(shape);
    const numel = numelOf(shape);
    const Ctor = ARRAY_CTORS[dtype];
    if (data === undefined) {
      data = new Ctor(numel) as DTypeArrays[D];
    } else {
      if (!(data instanceof (Ctor as unknown as abstract new (...a: never[]) => unknown))) {
        throw new DcpValueError('DCP_VALUE_ERROR', `Tensor data for dtype ${dtype} must be a ${Ctor.name}, got ${(data as object)?.constructor?.name ?? typeof data}`);
      }
      if (data.length !== numel) throw new DcpValueError('DCP_VALUE_ERROR', `Tensor data has ${data.length} elements but shape [${shape.join(', ')}] needs ${numel}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  get numel(): number {
    return this.data.length;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  /** The storage as bytes (a view, no copy). */
  get bytes(): Uint8Array {
    return bytesOf(this.data);
  }
}

/** One local shard of a ShardedTensor: `offsets` place it in global coordinates. */
export interface Shard {
  readonly offsets: readonly number[];
  readonly tensor: Tensor;
}

/**
 * A tensor whose global extent is split across ranks; each rank holds `localShards`.
 * Covers torch ShardedTensor and DTensor-style row, column and block sharding.
 */
export class ShardedTensor {
  readonly globalShape: readonly number[];
  readonly dtype: DType;
  readonly localShards: readonly Shard[];

  constructor(globalShape: readonly number[], dtype: DType, localShards: readonly Shard[]) {
    if (!isDType(dtype)) throw new DcpValueError('DCP_VALUE_ERROR', `Unsupported dtype ${JSON.stringify(dtype)}`);
    assertShape(globalShape, 'globalShape');
    for (const [i, shard] of localShards.entries()) {
      if (!(shard.tensor instanceof Tensor)) throw new DcpValueError('DCP_VALUE_ERROR', `local shard ${i} has no Tensor`);
      if (shard.tensor.dtype !== dtype) throw new DcpValueError('DCP_VALUE_ERROR', `local shard ${i} has dtype ${shard.tensor.dtype}, expected ${dtype}`);
      assertShape(shard.offsets, `local shard ${i} offsets`);
      if (shard.offsets.length !== globalShape.length || shard.tensor.shape.length !== globalShape.length) {
        throw new DcpValueError('DCP_VALUE_ERROR', `local shard ${i} has ${shard.tensor.shape.length} dims and ${shard.offsets.length} offsets; the global shape has ${globalShape.length}`);
      }
      for (let d = 0; d < globalShape.length; d++) {
        if (shard.offsets[d]! + shard.tensor.shape[d]! > globalShape[d]!) {
          throw new DcpValueError('DCP_VALUE_ERROR', `local shard ${i} [offsets ${shard.offsets.join(',')}; sizes ${shard.tensor.shape.join(',')}] exceeds global shape [${globalShape.join(', ')}]`);
        }
      }
    }
    this.globalShape = Object.freeze([...globalShape]);
    this.dtype = dtype;
    this.localShards = Object.freeze([...localShards]);
  }
}
