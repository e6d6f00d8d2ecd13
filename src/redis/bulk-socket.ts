/**
 * A second connection for segment bytes only (SET and GETRANGE, RESP2, pipelined): SETs
 * write the caller's views as they are (writev) and GETRANGE replies land straight in a
 * buffer the caller owns, where ioredis would copy each value. Standalone Redis only (TCP,
 * TLS, unix socket). Why and what it gains: docs/performance.md, "What changed" item 1.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Redis } from 'ioredis';
import { DcpError } from '../core/errors.js';
import type { RedisClient } from './connection.js';
import { replyError } from './errors.js';

interface StatusWait {
  readonly kind: 'status';
  /** An error reply resolves too (the caller does not care whether it worked). */
  readonly tolerant?: boolean;
  /** An integer reply (`:n`) is the answer (WAIT). */
  readonly integer?: boolean;
  readonly resolve: (n?: number) => void;
  readonly reject: (err: Error) => void;
}

interface BulkWait {
  readonly kind: 'bulk';
  readonly dest: Uint8Array;
  /** Called with each run of value bytes as it lands in `dest`, in order. */
  readonly onBytes?: ((bytes: Uint8Array) => void) | undefined;
  /** Value length once its header arrived; -1 before. */
  length: number;
  got: number;
  /** CRLF bytes still to skip after the value. */
  trailer: number;
  readonly resolve: (length: number) => void;
  readonly reject: (err: Error) => void;
}

type Wait = StatusWait | BulkWait;

const CRLF = Buffer.from('\r\n');
const SCRATCH_BYTES = 64 * 1024;
const FLUSH_NOW_BYTES = 64 * 1024;
/** Bulk connections per writer or reader unless configured (see BulkConnections). */
export const DEFAULT_BULK_CONNECTIONS = 1;
/** Largest accepted bulkConnections. */
export const MAX_BULK_CONNECTIONS = 16;

export class BulkSocket {
  private readonly waits: Wait[] = [];
  /** An incomplete header line carried over to the next chunk. */
  private partial: Buffer | undefined;
  private broken: Error | undefined;

  private socket!: Socket;
  /** Receive buffer for reply headers (and body bytes that arrive with them); reused. */
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  /** The reply whose body the kernel is reading straight into its destination, if any. */
  private directTarget: BulkWait | undefined;

  private constructor() {}

  private attach(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk)); // TLS only: plain sockets deliver through onread
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new DcpError('REDIS_UNAVAILABLE', 'bulk connection to Redis closed')));
  }

  /**
   * Where the kernel puts the next bytes it reads: inside a reply body, the unfilled
   * rest of the caller's buffer (no intermediate copy, no buffer allocated per read);
   * otherwise the scratch buffer. Node asks again after every read.
   */
  private nextReadBuffer(): Uint8Array {
    const head = this.waits[0];
    if (head?.kind === 'bulk' && head.length >= 0 && head.got < head.length) {
      this.directTarget = head;
      return head.dest.subarray(head.got, head.length);
    }
    this.directTarget = undefined;
    return this.scratch;
  }

  private onRead(bytes: number, buf: Uint8Array): void {
    if (buf === this.scratch) return this.onData(this.scratch.subarray(0, bytes));
    const target = this.directTarget;
    if (target !== undefined && target === this.waits[0]) {
      target.got += bytes;
      target.onBytes?.(buf.subarray(0, bytes));
    }
  }

  /**
   * A bulk connection to the same server, user and database as `client`, or undefined
   * when `client` is not a plain standalone connection (Cluster, Sentinel).
   */
  static async forClient(client: RedisClient, timeoutMs = 10_000): Promise<BulkSocket | undefined> {
    if (!(client instanceof Redis)) return undefined;
    const o = client.options;
    if (o.sentinels && o.sentinels.length > 0) return undefined;
    const host = o.host ?? '127.0.0.1';
    const port = Number(o.port ?? 6379); // a string when parsed from a URL
    const tlsOptions = o.tls ? (typeof o.tls === 'object' ? o.tls : {}) : undefined; // rediss:// gives `true`
    const bulk = new BulkSocket();
    const onread = { buffer: () => bulk.nextReadBuffer(), callback: (bytes: number, buf: Uint8Array) => (bulk.onRead(bytes, buf), true) };
    const socket = tlsOptions
      ? tlsConnect({ ...tlsOptions, host, port, servername: tlsOptions.servername ?? host })
      : netConnect(o.path ? { path: o.path, onread } : { port, host, onread });
    const where = o.path ?? `${host}:${port}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DcpError('REDIS_UNAVAILABLE', `bulk connection to ${where} timed out`));
      }, timeoutMs);
      socket.once(o.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    bulk.attach(socket);
    try {
      if (o.password) await bulk.command(o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password]);
      if (o.db !== undefined && Number(o.db) !== 0) await bulk.command(['SELECT', String(o.db)]);
    } catch (err) {
      bulk.close();
      throw err;
    }
    return bulk;
  }

  /** Requests sent and not answered yet. */
  get pending(): number {
    return this.waits.length;
  }

  /**
   * SET key to the concatenation of `pieces`, written from the caller's memory. With
   * `over`, first RENAMEs that key onto `key` in the same write (a pooled segment whose
   * memory the SET then reuses; a missing one is no error, the SET just makes a new key);
   * `replace: 'delete'` DELs it instead (a Cluster: pooled and data keys are in different
   * slots of one master, and memory freed right before the SET is reused just the same).
   */
  set(key: string, pieces: readonly Uint8Array[], over?: string, replace: 'rename' | 'delete' = 'rename'): Promise<void> {
    const length = pieces.reduce((n, p) => n + p.byteLength, 0);
    const keyBytes = Buffer.from(key);
    const setCommand = [Buffer.from(`*3\r\n$3\r\nSET\r\n$${keyBytes.byteLength}\r\n`), keyBytes, Buffer.from(`\r\n$${length}\r\n`), ...pieces, CRLF];
    if (over === undefined) return this.send({ kind: 'status' }, setCommand);
    const ignore = () => {}; // the SET's own reply reports a broken connection
    const first = replace === 'rename' ? ['RENAME', over, key] : ['DEL', over]; // DEL's integer reply goes to `ignore` too
    return this.send({ kind: 'status' }, [encode(first), ...setCommand], { kind: 'status', tolerant: true, resolve: ignore, reject: ignore });
  }

  /** GETRANGE key start end (inclusive) into `dest`; resolves with the bytes received. */
  getRangeInto(key: string, start: number, end: number, dest: Uint8Array, onBytes?: (bytes: Uint8Array) => void): Promise<number> {
    const args = ['GETRANGE', key, String(start), String(end)];
    return this.send({ kind: 'bulk', dest, onBytes, length: -1, got: 0, trailer: 2 }, [encode(args)]);
  }

  close(): void {
    this.fail(new DcpError('REDIS_UNAVAILABLE', 'bulk connection closed'));
    this.socket.destroy();
  }

  /** WAIT: how many of `replicas` acknowledged every write sent on this connection, within `timeoutMs`. */
  waitForReplicas(replicas: number, timeoutMs: number): Promise<number> {
    return this.send({ kind: 'status', integer: true }, [encode(['WAIT', String(replicas), String(timeoutMs)])]);
  }

  private command(args: readonly string[]): Promise<void> {
    return this.send({ kind: 'status' }, [encode(args)]);
  }

  /** Writes `chunks` (one or more commands); `before` awaits the reply of a command sent ahead of the one `wait` answers. */
  private send<T>(wait: Omit<StatusWait, 'resolve' | 'reject'> | Omit<BulkWait, 'resolve' | 'reject'>, chunks: readonly Uint8Array[], before?: StatusWait): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.broken) return reject(this.broken);
      if (before) this.waits.push(before);
      this.waits.push({ ...wait, resolve, reject } as unknown as Wait);
      this.socket.cork();
      let bytes = 0;
      for (const c of chunks) {
        this.socket.write(c);
        bytes += c.byteLength;
      }
      // Small requests of one tick share a writev; a large value goes out now, so the
      // kernel and Redis work on it while the caller goes on (e.g. checksums the next one).
      if (bytes >= FLUSH_NOW_BYTES) this.socket.uncork();
      else process.nextTick(() => this.socket.uncork());
    });
  }

  private fail(err: Error): void {
    this.broken ??= err;
    for (const w of this.waits.splice(0)) w.reject(this.broken);
  }

  private onData(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const head = this.waits[0];
      if (!head) return this.fail(new DcpError('REDIS_ERROR', 'Redis sent a reply nobody asked for'));
      if (head.kind === 'bulk' && head.length >= 0) {
        pos = this.onBody(head, chunk, pos);
        continue;
      }
      if (this.partial && this.partial.at(-1) === 13 && chunk[pos] === 10) {
        // The previous chunk ended between "\r" and "\n".
        const line = this.partial.subarray(0, -1).toString('latin1');
        this.partial = undefined;
        pos += 1;
        this.onLine(head, line);
        continue;
      }
      const end = chunk.indexOf(CRLF, pos);
      if (end < 0) {
        this.partial = this.partial ? Buffer.concat([this.partial, chunk.subarray(pos)]) : Buffer.from(chunk.subarray(pos));
        return;
      }
      const piece = chunk.subarray(pos, end);
      const line = (this.partial ? Buffer.concat([this.partial, piece]) : piece).toString('latin1');
      this.partial = undefined;
      pos = end + 2;
      this.onLine(head, line);
    }
  }

  private onLine(head: Wait, line: string): void {
    if (line.startsWith('-')) {
      this.waits.shift();
      if (head.kind === 'status' && head.tolerant) head.resolve();
      else head.reject(replyError(line.slice(1)));
    } else if (head.kind === 'status') {
      this.waits.shift();
      if (line.startsWith('+')) head.resolve();
      else if (head.integer && line.startsWith(':')) head.resolve(Number(line.slice(1)));
      else head.reject(new DcpError('REDIS_ERROR', `unexpected reply from Redis: ${line.slice(0, 80)}`));
    } else {
      const length = line.startsWith('$') ? Number(line.slice(1)) : NaN;
      if (length === -1) {
        this.waits.shift();
        head.resolve(0);
      } else if (!Number.isSafeInteger(length) || length < 0) {
        this.fail(new DcpError('REDIS_ERROR', `unexpected reply from Redis: ${line.slice(0, 80)}`));
        this.socket.destroy();
      } else if (length > head.dest.byteLength) {
        this.fail(new DcpError('REDIS_ERROR', `Redis returned ${length} bytes, more than the ${head.dest.byteLength} asked for`));
        this.socket.destroy();
      } else {
        head.length = length;
      }
    }
  }

  /** Copies value bytes into the destination, then skips the trailing CRLF. */
  private onBody(head: BulkWait, chunk: Buffer, pos: number): number {
    if (head.got < head.length) {
      const n = Math.min(head.length - head.got, chunk.length - pos);
      head.dest.set(chunk.subarray(pos, pos + n), head.got);
      head.onBytes?.(head.dest.subarray(head.got, head.got + n));
      head.got += n;
      pos += n;
    }
    if (head.got === head.length) {
      const skip = Math.min(head.trailer, chunk.length - pos);
      head.trailer -= skip;
      pos += skip;
      if (head.trailer === 0) {
        this.waits.shift();
        head.resolve(head.length);
      }
    }
    return pos;
  }
}

/**
 * A few bulk connections used side by side: each request goes to the connection with the
 * fewest unanswered requests. Why more than one: Redis serves one connection's large
 * value while the kernel already fills another's socket buffer, and the client's reads
 * and writes overlap (measured here: SET 0.7-1.1 GB/s on one connection, 1.3-1.6 GB/s on
 * two, with redis-server's core busy the whole time).
 */
export class BulkConnections {
  private constructor(private readonly sockets: readonly BulkSocket[]) {}

  /** `count` bulk connections like `client`'s, or undefined when `client` can have none (see BulkSocket.forClient). */
  static async open(client: RedisClient, count: number): Promise<BulkConnections | undefined> {
    const opened = await Promise.allSettled(Array.from({ length: Math.max(1, count) }, () => BulkSocket.forClient(client)));
    const sockets = opened.flatMap((o) => (o.status === 'fulfilled' && o.value ? [o.value] : []));
    if (sockets.length < opened.length) {
      sockets.forEach((s) => s.close());
      const failure = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failure) throw failure.reason;
      return undefined;
    }
    return new BulkConnections(sockets);
  }

  set(key: string, pieces: readonly Uint8Array[], over?: string, replace?: 'rename' | 'delete'): Promise<void> {
    return this.leastBusy().set(key, pieces, over, replace);
  }

  getRangeInto(key: string, start: number, end: number, dest: Uint8Array, onBytes?: (bytes: Uint8Array) => void): Promise<number> {
    return this.leastBusy().getRangeInto(key, start, end, dest, onBytes);
  }

  /** The fewest replicas that acknowledged any one connection's writes (see BulkSocket.waitForReplicas). */
  async waitForReplicas(replicas: number, timeoutMs: number): Promise<number> {
    return Math.min(...(await Promise.all(this.sockets.map((s) => s.waitForReplicas(replicas, timeoutMs)))));
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }

  private leastBusy(): BulkSocket {
    let best = this.sockets[0]!;
    for (const s of this.sockets) if (s.pending < best.pending) best = s;
    return best;
  }
}

function encode(args: readonly string[]): Buffer {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return Buffer.from(out);
}
