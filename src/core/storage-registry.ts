/**
 * Automatic storage selection: like DCP, `save`/`load` called with only a
 * checkpointId ask each registered backend whether it recognises the id.
 * The core registers nothing; `src/index.ts` registers the Redis backend.
 */
import { DcpValueError } from './errors.js';
import type { StorageReader, StorageWriter } from './storage.js';

export interface StorageBackend {
  readonly name: string;
  validateCheckpointId(checkpointId: string): boolean;
  createWriter(checkpointId: string): StorageWriter;
  createReader(checkpointId: string): StorageReader;
}

const backends: StorageBackend[] = [];

export function registerStorageBackend(backend: StorageBackend): void {
  if (!backends.some((b) => b.name === backend.name)) backends.push(backend);
}

function pick(checkpointId: string | undefined): StorageBackend {
  if (checkpointId === undefined) throw new DcpValueError('NO_STORAGE', 'Pass a storageWriter/storageReader or a checkpointId to select one');
  const backend = backends.find((b) => b.validateCheckpointId(checkpointId));
  if (!backend) throw new DcpValueError('NO_STORAGE', `No storage backend recognises checkpoint id ${JSON.stringify(checkpointId)}; pass a storageWriter/storageReader`);
  return backend;
}

/** The writer to use and whether `save` created it (then `save` also closes it). */
/** As DCP's _storage_setup: a given id is passed to `reset` before anything else runs. */
export function resolveWriter(writer: StorageWriter | undefined, checkpointId: string | undefined): { writer: StorageWriter; owned: boolean } {
  const owned = writer === undefined;
  const chosen = writer ?? pick(checkpointId).createWriter(checkpointId!);
  if (checkpointId !== undefined) chosen.reset(checkpointId);
  return { writer: chosen, owned };
}

export function resolveReader(reader: StorageReader | undefined, checkpointId: string | undefined): { reader: StorageReader; owned: boolean } {
  const owned = reader === undefined;
  const chosen = reader ?? pick(checkpointId).createReader(checkpointId!);
  if (checkpointId !== undefined) chosen.reset(checkpointId);
  return { reader: chosen, owned };
}
