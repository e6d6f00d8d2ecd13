/**
 * The one place that builds Redis keys. See docs/format.md.
 *
 * Control keys of a checkpoint carry the hash tag `{<id>}` so they sit in one Cluster
 * slot and a Lua script can change them atomically. Data keys carry no tag, so a
 * checkpoint's bytes spread over every master. Process-wide keys (the catalog index,
 * the fencing counter) live outside any checkpoint.
 */
import { assertValidCheckpointName, assertValidGroupId, assertValidPrefix } from './checkpoint-id.js';

export const DEFAULT_PREFIX = 'dcp';

export class KeySpace {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_PREFIX) {
    assertValidPrefix(prefix);
    this.prefix = prefix;
  }

  /** Sorted set of checkpoint ids, score = creation time (ms). */
  catalog(): string {
    return `${this.prefix}:catalog`;
  }

  /** Global fencing counter: every lock acquisition takes the next token. */
  fenceCounter(): string {
    return `${this.prefix}:fence`;
  }

  /** Set: names of retired segments that a save may take over (segment recycling, see segment-pool.ts). */
  segmentPool(): string {
    return `${this.prefix}:pool`;
  }

  /**
   * Set: on a Cluster, the pooled segments of one master: retired data keys (they keep their
   * names, with the pool TTL); `tag` is chosen so that this set lives on that master (segment-pool.ts).
   */
  segmentPoolOn(tag: string): string {
    return `${this.prefix}:pool:{${tag}}`;
  }

  /** A retired segment, named after the data key it was (unique), expiring unless a save takes it. */
  pooledSegment(dataKey: string): string {
    return `${this.prefix}:pool:${dataKey.slice(this.prefix.length + ':data:'.length)}`;
  }

  /** String: one stored piece of an incremental save, named by the hash of its bytes (no hash tag). */
  piece(hash: string): string {
    return `${this.prefix}:blob:${hash}`;
  }

  /** Hash: piece hash → number of saves (pending or committed) whose piece set holds it (incremental saves). */
  pieceCounts(): string {
    return `${this.prefix}:blobs`;
  }

  /** String (counter): bytes of all pieces currently counted in pieceCounts() (each piece once). */
  pieceBytes(): string {
    return `${this.prefix}:blobs:bytes`;
  }

  /**
   * Redis Cluster layout of pieces (format redis-dcp/3): every key of one piece tag (the first
   * two hex digits of the piece hash, 256 tags) shares the hash tag `{tt}`, so claim, release
   * and sweep of a tag's pieces are single-slot scripts. See docs/format.md, "Redis Cluster".
   */
  pieceTag(id: string): string {
    return id.slice(0, 2);
  }

  /** String: a piece in the Cluster layout, `P:blob:{tt}:<id>`. */
  taggedPiece(id: string): string {
    return `${this.prefix}:blob:{${id.slice(0, 2)}}:${id}`;
  }

  /** The piece id of a piece key of either layout, or undefined for another key. */
  pieceIdOf(key: string): string | undefined {
    const head = `${this.prefix}:blob:`;
    if (!key.startsWith(head)) return undefined;
    const rest = key.slice(head.length);
    return rest.startsWith('{') ? rest.slice(rest.indexOf('}:') + 2) : rest;
  }

  /** Hash: piece id → number of holders (save piece indexes) in tag `tag`. */
  tagCounts(tag: string): string {
    return `${this.prefix}:blobs:{${tag}}`;
  }

  /** String (counter): bytes of the counted pieces of tag `tag` (each once). */
  tagBytes(tag: string): string {
    return `${this.prefix}:blobs:{${tag}}:bytes`;
  }

  /** Set: holders `<ID>/<saveId>` with a piece index in tag `tag` (what gc's sweep checks). */
  tagHolders(tag: string): string {
    return `${this.prefix}:blobs:{${tag}}:holders`;
  }

  /** Set: the piece ids of tag `tag` that save `saveId` of checkpoint `id` holds. */
  tagHold(tag: string, id: string, saveId: string): string {
    return `${this.prefix}:blobs:{${tag}}:held:${id}/${saveId}`;
  }

  /** The state hash key of any id is `before + id + after` (for the list-page script, which names the state hashes of the ids it reads). */
  stateKeyAround(): readonly [before: string, after: string] {
    return [`${this.prefix}:ckpt:{`, '}:state'];
  }

  checkpoint(id: string): CheckpointKeys {
    assertValidCheckpointName(id);
    return new CheckpointKeys(this.prefix, id);
  }

  processGroup(groupId: string): GroupKeys {
    assertValidGroupId(groupId);
    return new GroupKeys(this.prefix, groupId);
  }
}

export class CheckpointKeys {
  private readonly control: string;

  constructor(
    readonly prefix: string,
    readonly id: string,
  ) {
    this.control = `${prefix}:ckpt:{${id}}`;
  }

  /** Hash: the state machine (see docs/format.md). */
  get state(): string {
    return `${this.control}:state`;
  }

  /** String: committed metadata (JSON). */
  get meta(): string {
    return `${this.control}:meta`;
  }

  /** Set: save ids that own data keys (in progress, committed, superseded or abandoned). */
  get saves(): string {
    return `${this.control}:saves`;
  }

  /** Set: the data keys one save wrote, recorded before they are written. */
  dataIndex(saveId: string): string {
    return `${this.control}:keys:${saveId}`;
  }

  /** Sorted set: load pins, member = pin id, score = expiry (ms, Redis clock); see docs/format.md, "Load pins". */
  get pins(): string {
    return `${this.control}:pins`;
  }

  /** Set: the piece hashes one incremental save references, recorded before it writes or uses them. */
  pieceIndex(saveId: string): string {
    return `${this.control}:pieces:${saveId}`;
  }

  /** Set: the piece tags an incremental save on a Cluster claimed pieces in, recorded before each claim. */
  pieceTags(saveId: string): string {
    return `${this.control}:ptags:${saveId}`;
  }

  /** The Redlock resource (on the lock nodes). */
  get lock(): string {
    return `${this.control}:lock`;
  }

  /** A stored piece of an incremental save (shared by every checkpoint of the prefix; see KeySpace.piece). */
  piece(id: string): string {
    return `${this.prefix}:blob:${id}`;
  }

  /** A stored piece in the Cluster layout (format redis-dcp/3; see KeySpace.taggedPiece). */
  taggedPiece(id: string): string {
    return `${this.prefix}:blob:{${id.slice(0, 2)}}:${id}`;
  }

  /** A data segment: no hash tag, so segments spread over Cluster slots. */
  dataKey(saveId: string, rank: number, seq: number): string {
    return `${this.prefix}:data:${this.id}:${saveId}:${rank}:${seq}`;
  }
}

/**
 * Keys of one RedisProcessGroup. All carry the hash tag `{groupId}`, so a group's keys share
 * one Cluster slot and its pipelines and scripts never hit CROSSSLOT. Every key of a run
 * contains the run's nonce, so one run never touches another's messages.
 */
export class GroupKeys {
  private readonly base: string;

  constructor(
    readonly prefix: string,
    readonly groupId: string,
  ) {
    this.base = `${prefix}:pg:{${groupId}}`;
  }

  /** String: `<runNonce>/<worldSize>`, rank 0's claim on the group id. */
  get claim(): string {
    return `${this.base}:claim`;
  }

  /** List: ranks asking to join run `run` (wakes rank 0). */
  join(run: string): string {
    return `${this.base}:${run}:join`;
  }

  /** Set: the ranks that joined run `run` (read by a follower that times out). */
  joined(run: string): string {
    return `${this.base}:${run}:joined`;
  }

  /** List: rank 0's admission answer for `rank`. */
  admit(run: string, rank: number): string {
    return `${this.base}:${run}:admit:${rank}`;
  }

  /** List: `rank`'s inbox for collective number `seq`. */
  inbox(run: string, seq: number, rank: number): string {
    return `${this.base}:${run}:${seq}:${rank}`;
  }

  /** Hash: a payload `sender` sent to several ranks in collective `seq`, stored once. */
  shared(run: string, seq: number, sender: number): string {
    return `${this.base}:${run}:${seq}:shared:${sender}`;
  }
}
