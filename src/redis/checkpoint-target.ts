/**
 * What a storage writer or reader points at: the checkpoint id (validated before any key
 * is built) and the data connection (the client given, or one opened from a URL, either
 * the `redis` option or the server named by a redis:// id). Shared by writer and reader.
 */
import { DcpValueError } from '../core/errors.js';
import { parseCheckpointId } from './checkpoint-id.js';
import { CheckpointStore } from './checkpoint-store.js';
import { closeClient, connect, type RedisClient, type RedisInput } from './connection.js';
import type { KeySpace } from './keys.js';

export class CheckpointTarget {
  private name: string | undefined;
  private url: string | undefined;
  private connection: RedisClient | undefined;
  private ownsConnection = false;
  private cachedStore: CheckpointStore | undefined;

  constructor(
    private readonly input: RedisInput | undefined,
    private readonly keySpace: KeySpace,
    /** "save()"/"load()" and "writer"/"reader", for error messages. */
    private readonly role: { readonly call: string; readonly what: string },
  ) {}

  /** Validates and adopts `checkpointId` (throws InvalidCheckpointIdError before any key is touched). */
  setId(checkpointId: string): void {
    const parsed = parseCheckpointId(checkpointId);
    this.name = parsed.name;
    this.url = parsed.url;
    this.cachedStore = undefined;
  }

  get id(): string | undefined {
    return this.name;
  }

  get client(): RedisClient {
    if (!this.connection) {
      const input = this.input ?? this.url;
      if (input === undefined) throw new DcpValueError('DCP_VALUE_ERROR', `Redis storage ${this.role.what} needs \`redis\` (a client or URL) or a redis:// checkpoint id`);
      const { client, owned } = connect(input);
      this.connection = client;
      this.ownsConnection = owned;
    }
    return this.connection;
  }

  /** The checkpoint's control plane; built once per id. */
  store(): CheckpointStore {
    if (this.name === undefined) throw new DcpValueError('DCP_VALUE_ERROR', `No checkpoint id: pass checkpointId to ${this.role.call} or to the ${this.role.what}`);
    this.cachedStore ??= new CheckpointStore(this.client, this.keySpace, this.name);
    return this.cachedStore;
  }

  /** Closes the data connection if it was opened here. */
  async close(): Promise<void> {
    if (this.connection && this.ownsConnection) await closeClient(this.connection);
    this.connection = undefined;
    this.cachedStore = undefined;
  }
}
