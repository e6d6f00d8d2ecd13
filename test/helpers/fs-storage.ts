/**
 * Test-only file-system storage: the checkpoint id is a directory. Unlike the in-memory
 * storage it is shared by separate processes, so the DCP core can be tested across OS
 * processes (RedisProcessGroup) without the Redis storage backend. Each rank writes one
 * file of concatenated items; the coordinator writes `.metadata` (JSON) last, via rename,
 * so a checkpoint without it is incomplete.
 */
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metadataFromJSON, metadataToJSON } from '../../src/core/metadata-json.js';
import { metadataIndexKey, type Metadata } from '../../src/core/metadata.js';
import { LoadItemType, type LoadPlan, type LoadPlanner, type SavePlan, type SavePlanner } from '../../src/core/planner.js';
import { lookupChunk, writeDataBytes } from '../../src/core/storage-helpers.js';
import { StorageReader, StorageWriter, type WriteResult } from '../../src/core/storage.js';
import { copyBoxInto } from '../../src/core/tensor-box.js';

/** Where one item's bytes are: a byte range of a rank's file. */
interface FsLocation {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

const METADATA_FILE = '.metadata';

export class FsStorageWriter extends StorageWriter {
  private dir: string;
  constructor(dir = '') {
    super();
    this.dir = dir;
  }
  reset(checkpointId?: string): void {
    if (checkpointId) this.dir = checkpointId;
  }
  async setUpStorageWriter(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }
  prepareLocalPlan(plan: SavePlan): SavePlan {
    return plan;
  }
  prepareGlobalPlan(plans: SavePlan[]): SavePlan[] {
    return plans.map((plan, rank) => ({ ...plan, storageData: { file: `rank-${rank}.bin` } }));
  }
  async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    const file = (plan.storageData as { file: string }).file;
    const parts: Uint8Array[] = [];
    const results: WriteResult[] = [];
    let offset = 0;
    for (const item of plan.items) {
      const bytes = writeDataBytes(planner.resolveData(item));
      parts.push(bytes);
      results.push({ index: item.index, sizeInBytes: bytes.byteLength, storageData: { file, offset, length: bytes.byteLength } satisfies FsLocation });
      offset += bytes.byteLength;
    }
    await writeFile(join(this.dir, file), parts);
    return results;
  }
  async finish(metadata: Metadata, results: WriteResult[][]): Promise<void> {
    const storageData: Record<string, FsLocation> = {};
    for (const r of results.flat()) storageData[metadataIndexKey(r.index)] = r.storageData as FsLocation;
    const tmp = join(this.dir, `${METADATA_FILE}.tmp`);
    await writeFile(tmp, metadataToJSON({ ...metadata, storageData }));
    await rename(tmp, join(this.dir, METADATA_FILE));
  }
}

export class FsStorageReader extends StorageReader {
  private dir: string;
  private metadata: Metadata | undefined;
  constructor(dir = '') {
    super();
    this.dir = dir;
  }
  reset(checkpointId?: string): void {
    if (checkpointId) this.dir = checkpointId;
  }
  async readMetadata(): Promise<Metadata> {
    return metadataFromJSON(await readFile(join(this.dir, METADATA_FILE), 'utf8'));
  }
  setUpStorageReader(metadata: Metadata): void {
    this.metadata = metadata;
  }
  prepareLocalPlan(plan: LoadPlan): LoadPlan {
    return plan;
  }
  prepareGlobalPlan(plans: LoadPlan[]): LoadPlan[] {
    return plans;
  }
  async readData(plan: LoadPlan, planner: LoadPlanner): Promise<void> {
    const metadata = this.metadata!;
    const locations = metadata.storageData as Record<string, FsLocation>;
    for (const item of plan.items) {
      const where = locations[metadataIndexKey(item.storageIndex)]!;
      const bytes = await readRange(join(this.dir, where.file), where.offset, where.length);
      if (item.type === LoadItemType.BYTE_IO) {
        planner.loadBytes(item, bytes);
        continue;
      }
      const { chunk } = lookupChunk(metadata, item.storageIndex);
      const region = planner.resolveTensor(item);
      copyBoxInto(region, bytes, chunk.sizes, item.storageOffsets);
      planner.commitTensor(item, region);
    }
  }
}

async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const handle = await open(path, 'r');
  try {
    const bytes = new Uint8Array(length);
    const { bytesRead } = await handle.read(bytes, 0, length, offset);
    if (bytesRead !== length) throw new Error(`${path}: ${bytesRead} of ${length} bytes at ${offset}`);
    return bytes;
  } finally {
    await handle.close();
  }
}
