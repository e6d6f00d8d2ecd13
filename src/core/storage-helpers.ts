/** Small lookups every storage reader/writer needs. */
import { DcpValueError } from './errors.js';
import type { ChunkStorageMetadata, Metadata, MetadataIndex, TensorStorageMetadata } from './metadata.js';
import type { WriteData } from './planner.js';
import { Tensor } from './tensor.js';

/** Storage writers/readers report bytes moved for progress (README "Events and progress"). */
export { reportTransferred } from './progress.js';

/** The bytes to store for a resolved write item (a view, never a copy). */
export function writeDataBytes(data: WriteData): Uint8Array {
  return data instanceof Tensor ? data.bytes : data;
}

function sameOffsets(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The saved chunk a read item's storageIndex points at (index hint first, then by offsets). */
export function lookupChunk(metadata: Metadata, index: MetadataIndex): { tensor: TensorStorageMetadata; chunk: ChunkStorageMetadata } {
  const md = metadata.stateDictMetadata[index.fqn];
  if (!md || md.type !== 'tensor') throw new DcpValueError('ITEM_NOT_FOUND', `Checkpoint has no tensor "${index.fqn}"`);
  const offset = index.offset ?? new Array<number>(md.size.length).fill(0);
  const hinted = index.index !== undefined ? md.chunks[index.index] : undefined;
  if (hinted && sameOffsets(hinted.offsets, offset)) return { tensor: md, chunk: hinted };
  const found = md.chunks.find((c) => sameOffsets(c.offsets, offset));
  if (!found) throw new DcpValueError('ITEM_NOT_FOUND', `Checkpoint has no chunk of "${index.fqn}" at offsets [${offset.join(', ')}]`);
  return { tensor: md, chunk: found };
}
