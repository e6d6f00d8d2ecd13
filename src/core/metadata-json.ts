/**
 * The JSON encoding of checkpoint Metadata, both ways. Reading treats the text as
 * untrusted: every field is type-checked and bounded, and any problem is a DcpError with
 * code METADATA_INVALID naming the field. The format: docs/format.md, "Metadata".
 */
import { DcpError } from './errors.js';
import type { BytesStorageMetadata, ChunkStorageMetadata, Metadata, StorageMeta, StorageMetadata, TensorStorageMetadata } from './metadata.js';
import { DTYPES, elementSize, isDType } from './tensor.js';

/** Most dims a tensor may have (torch's own limit is 64 too). */
export const MAX_TENSOR_DIMS = 64;

export interface MetadataLimits {
  /** Longest accepted JSON text, in UTF-16 code units. Default 1 GiB. */
  readonly maxTextLength?: number;
  /** Longest accepted FQN. Default 64 KiB. */
  readonly maxFqnLength?: number;
  /** Most chunks over all tensors. Default 10 million. */
  readonly maxTotalChunks?: number;
}

const DEFAULTS: Required<MetadataLimits> = {
  maxTextLength: 1 << 30,
  maxFqnLength: 64 * 1024,
  maxTotalChunks: 10_000_000,
};

const TOP_LEVEL_KEYS = new Set(['version', 'stateDictMetadata', 'plannerData', 'storageData', 'storageMeta']);

function invalid(path: string, problem: string): DcpError {
  return new DcpError('METADATA_INVALID', `Invalid checkpoint metadata: ${path}: ${problem}`);
}

function typeName(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function expectObject(value: unknown, path: string): Record<string, unknown> {
  if (!isObject(value)) throw invalid(path, `expected an object, got ${typeName(value)}`);
  return value;
}

function expectOnlyKeys(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw invalid(path, `unexpected field ${JSON.stringify(key.slice(0, 100))}`);
  }
}

function expectString(value: unknown, path: string, maxLength: number): string {
  if (typeof value !== 'string') throw invalid(path, `expected a string, got ${typeName(value)}`);
  if (value.length > maxLength) throw invalid(path, `string longer than ${maxLength} characters`);
  return value;
}

function expectBoolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw invalid(path, `expected a boolean, got ${typeName(value)}`);
  return value;
}

function expectLiteral<T extends string>(value: unknown, expected: T, path: string): T {
  if (value !== expected) throw invalid(path, `expected ${JSON.stringify(expected)}, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 100)) : typeName(value)}`);
  return expected;
}

function expectDims(value: unknown, path: string, rank?: number): number[] {
  if (!Array.isArray(value)) throw invalid(path, `expected an array of non-negative integers, got ${typeName(value)}`);
  if (value.length > MAX_TENSOR_DIMS) throw invalid(path, `has ${value.length} dims; at most ${MAX_TENSOR_DIMS} are allowed`);
  if (rank !== undefined && value.length !== rank) throw invalid(path, `has ${value.length} dims but the tensor has ${rank}`);
  const out = new Array<number>(value.length);
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${path}[${i}]`, `expected a non-negative integer, got ${typeof v === 'number' ? String(v) : typeName(v)}`);
    out[i] = v;
  }
  return out;
}

/** Adds an own enumerable property, also for "__proto__" (JSON.parse creates those as own keys). */
function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

interface Budget {
  chunks: number;
}

function parseTensor(raw: Record<string, unknown>, path: string, limits: Required<MetadataLimits>, budget: Budget): TensorStorageMetadata {
  expectOnlyKeys(raw, ['type', 'properties', 'size', 'chunks'], path);
  const props = expectObject(raw.properties, `${path}.properties`);
  expectOnlyKeys(props, ['dtype', 'layout', 'requiresGrad', 'memoryFormat', 'pinMemory'], `${path}.properties`);
  const dtype = props.dtype;
  if (!isDType(dtype)) {
    throw invalid(`${path}.properties.dtype`, `expected one of ${DTYPES.join(', ')}, got ${typeof dtype === 'string' ? JSON.stringify(dtype.slice(0, 100)) : typeName(dtype)}`);
  }
  const properties = {
    dtype,
    layout: expectLiteral(props.layout, 'strided', `${path}.properties.layout`),
    requiresGrad: expectBoolean(props.requiresGrad, `${path}.properties.requiresGrad`),
    memoryFormat: expectLiteral(props.memoryFormat, 'contiguous_format', `${path}.properties.memoryFormat`),
    pinMemory: expectBoolean(props.pinMemory, `${path}.properties.pinMemory`),
  } as const;
  const size = expectDims(raw.size, `${path}.size`);
  // numel × element size must stay exact in a double and addressable.
  const maxNumel = Number.MAX_SAFE_INTEGER / elementSize(dtype);
  let numel = 1;
  for (const d of size) {
    numel *= d;
    if (numel > maxNumel) throw invalid(`${path}.size`, `tensor of ${dtype} with shape [${size.join(', ')}] is too large (more than 2^53 bytes)`);
  }
  if (!Array.isArray(raw.chunks)) throw invalid(`${path}.chunks`, `expected an array, got ${typeName(raw.chunks)}`);
  budget.chunks += raw.chunks.length;
  if (budget.chunks > limits.maxTotalChunks) throw invalid(`${path}.chunks`, `more than ${limits.maxTotalChunks} chunks in total`);
  const chunks: ChunkStorageMetadata[] = new Array<ChunkStorageMetadata>(raw.chunks.length);
  for (let c = 0; c < raw.chunks.length; c++) {
    const cpath = `${path}.chunks[${c}]`;
    const chunk = expectObject(raw.chunks[c], cpath);
    expectOnlyKeys(chunk, ['offsets', 'sizes'], cpath);
    const offsets = expectDims(chunk.offsets, `${cpath}.offsets`, size.length);
    const sizes = expectDims(chunk.sizes, `${cpath}.sizes`, size.length);
    for (let d = 0; d < size.length; d++) {
      if (offsets[d]! + sizes[d]! > size[d]!) {
        throw invalid(cpath, `chunk (offsets [${offsets.join(', ')}], sizes [${sizes.join(', ')}]) lies outside the tensor size [${size.join(', ')}]`);
      }
    }
    chunks[c] = { offsets, sizes };
  }
  return { type: 'tensor', properties, size, chunks };
}

function parseItem(value: unknown, path: string, limits: Required<MetadataLimits>, budget: Budget): StorageMetadata {
  const raw = expectObject(value, path);
  if (raw.type === 'tensor') return parseTensor(raw, path, limits, budget);
  if (raw.type === 'bytes') {
    expectOnlyKeys(raw, ['type', 'encoding'], path);
    if (raw.encoding !== 'raw' && raw.encoding !== 'json') {
      throw invalid(`${path}.encoding`, `expected "raw" or "json", got ${typeof raw.encoding === 'string' ? JSON.stringify(raw.encoding.slice(0, 100)) : typeName(raw.encoding)}`);
    }
    const bytes: BytesStorageMetadata = { type: 'bytes', encoding: raw.encoding };
    return bytes;
  }
  throw invalid(`${path}.type`, `expected "tensor" or "bytes", got ${typeof raw.type === 'string' ? JSON.stringify(raw.type.slice(0, 100)) : typeName(raw.type)}`);
}

function parseStorageMeta(value: unknown, limits: Required<MetadataLimits>): StorageMeta {
  const raw = expectObject(value, 'storageMeta');
  expectOnlyKeys(raw, ['checkpointId', 'saveId', 'loadId', 'modules'], 'storageMeta');
  const out: { checkpointId?: string; saveId?: string; loadId?: string; modules?: string[] } = {};
  for (const key of ['checkpointId', 'saveId', 'loadId'] as const) {
    if (raw[key] !== undefined) out[key] = expectString(raw[key], `storageMeta.${key}`, limits.maxFqnLength);
  }
  if (raw.modules !== undefined) {
    if (!Array.isArray(raw.modules)) throw invalid('storageMeta.modules', `expected an array of strings, got ${typeName(raw.modules)}`);
    out.modules = raw.modules.map((m, i) => expectString(m, `storageMeta.modules[${i}]`, limits.maxFqnLength));
  }
  return out;
}

/** Parses and validates untrusted metadata JSON. Throws DcpError METADATA_INVALID. */
export function metadataFromJSON(text: string, limits: MetadataLimits = {}): Metadata {
  const lim: Required<MetadataLimits> = { ...DEFAULTS, ...limits };
  if (typeof text !== 'string') throw invalid('(text)', `expected a string, got ${typeName(text)}`);
  if (text.length > lim.maxTextLength) throw invalid('(text)', `${text.length} characters exceeds the limit of ${lim.maxTextLength}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalid('(text)', `not valid JSON (${(err as Error).message})`);
  }
  const root = expectObject(parsed, '(root)');
  for (const key of Object.keys(root)) {
    if (!TOP_LEVEL_KEYS.has(key)) throw invalid('(root)', `unexpected field ${JSON.stringify(key.slice(0, 100))}`);
  }
  const rawItems = expectObject(root.stateDictMetadata, 'stateDictMetadata');
  const stateDictMetadata: Record<string, StorageMetadata> = {};
  const budget: Budget = { chunks: 0 };
  for (const fqn of Object.keys(rawItems)) {
    if (fqn.length > lim.maxFqnLength) throw invalid('stateDictMetadata', `an FQN is longer than ${lim.maxFqnLength} characters`);
    define(stateDictMetadata, fqn, parseItem(rawItems[fqn], `stateDictMetadata[${JSON.stringify(fqn.length > 200 ? `${fqn.slice(0, 200)}…` : fqn)}]`, lim, budget));
  }
  const metadata: Metadata = { stateDictMetadata };
  if (root.version !== undefined) metadata.version = expectString(root.version, 'version', 64);
  if (root.plannerData !== undefined) metadata.plannerData = root.plannerData;
  if (root.storageData !== undefined) metadata.storageData = root.storageData;
  if (root.storageMeta !== undefined) metadata.storageMeta = parseStorageMeta(root.storageMeta, lim);
  return metadata;
}

/** Encodes metadata as JSON (see the format above). Fields that are undefined are omitted. */
export function metadataToJSON(md: Metadata): string {
  const stateDictMetadata: Record<string, unknown> = {};
  for (const fqn of Object.keys(md.stateDictMetadata)) {
    const item = md.stateDictMetadata[fqn]!;
    const encoded =
      item.type === 'tensor'
        ? {
            type: 'tensor',
            properties: {
              dtype: item.properties.dtype,
              layout: item.properties.layout,
              requiresGrad: item.properties.requiresGrad,
              memoryFormat: item.properties.memoryFormat,
              pinMemory: item.properties.pinMemory,
            },
            size: item.size,
            chunks: item.chunks.map((c) => ({ offsets: c.offsets, sizes: c.sizes })),
          }
        : { type: 'bytes', encoding: item.encoding };
    define(stateDictMetadata, fqn, encoded);
  }
  return JSON.stringify({
    version: md.version,
    stateDictMetadata,
    plannerData: md.plannerData,
    storageData: md.storageData,
    storageMeta: md.storageMeta,
  });
}
