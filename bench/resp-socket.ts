/**
 * A minimal RESP2 connection for bulk data only (SET and GET of large values), to
 * measure what a zero-copy transport could reach on the same Redis:
 *  - SET writes the header, then the caller's view itself (corked writev), so no
 *    argument is copied into a fresh buffer (ioredis 6 copies every Buffer argument
 *    into one new buffer per command, Command.toWritable → MixedBuffers.toBuffer);
 *  - GET copies each socket chunk of the reply straight into the caller's destination
 *    (ioredis collects the chunks and Buffer.concat()s them into a fresh buffer of the
 *    value's size, which the caller then copies again).
 * Replies arrive in request order; requests may be pipelined. Not a general client.
 */
import { connect, type Socket } from 'node:net';
import { boundedAll, throughput, type RawOptions, type Throughput } from './baselines.js';

type Pending =
  | { kind: 'ok'; resolve: () => void; reject: (e: Error) => void }
  | { kind: 'bulk'; dest: Uint8Array; got: number; length: number; trailer: number; resolve: (n: number) => void; reject: (e: Error) => void };

const CRLF = Buffer.from('\r\n');

export class RespBulkSocket {
  private readonly queue: Pending[] = [];
  /** Bytes of an incomplete reply header line carried over between chunks. */
  private line: Buffer | undefined;
  private failed: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static async connect(url: string): Promise<RespBulkSocket> {
    const u = new URL(url);
    const socket = connect(Number(u.port || 6379), u.hostname || '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RespBulkSocket(socket);
  }

  set(key: string, value: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.queue.push({ kind: 'ok', resolve, reject });
      const k = Buffer.from(key);
      this.socket.cork();
      this.socket.write(`*3\r\n$3\r\nSET\r\n$${k.byteLength}\r\n${key}\r\n$${value.byteLength}\r\n`);
      this.socket.write(value);
      this.socket.write(CRLF);
      process.nextTick(() => this.socket.uncork());
    });
  }

  /** GET `key` into `dest`; resolves with the value length (it must fit in dest). */
  getInto(key: string, dest: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.queue.push({ kind: 'bulk', dest, got: 0, length: -1, trailer: 2, resolve, reject });
      const k = Buffer.from(key);
      this.socket.write(`*2\r\n$3\r\nGET\r\n$${k.byteLength}\r\n${key}\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.queue.splice(0)) p.reject(err);
  }

  /** Reads one header line (`+OK`, `-ERR …`, `$<len>`) starting at `pos`; undefined when incomplete. */
  private readLine(chunk: Buffer, pos: number): { text: string; next: number } | undefined {
    const end = chunk.indexOf(CRLF, pos);
    if (end < 0) {
      this.line = this.line ? Buffer.concat([this.line, chunk.subarray(pos)]) : Buffer.from(chunk.subarray(pos));
      return undefined;
    }
    const part = chunk.subarray(pos, end);
    const text = (this.line ? Buffer.concat([this.line, part]) : part).toString('latin1');
    this.line = undefined;
    return { text, next: end + 2 };
  }

  private onData(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const head = this.queue[0];
      if (!head) return this.fail(new Error('reply without a request'));
      if (head.kind === 'ok' || head.length < 0) {
        // A "\r\n" split across chunks: the previous chunk ended with "\r".
        if (this.line && this.line[this.line.length - 1] === 13 && chunk[pos] === 10) {
          const text = this.line.subarray(0, -1).toString('latin1');
          this.line = undefined;
          pos += 1;
          this.onLine(head, text);
          continue;
        }
        const line = this.readLine(chunk, pos);
        if (!line) return;
        pos = line.next;
        this.onLine(head, line.text);
        continue;
      }
      if (head.got < head.length) {
        const n = Math.min(head.length - head.got, chunk.length - pos);
        head.dest.set(chunk.subarray(pos, pos + n), head.got);
        head.got += n;
        pos += n;
      }
      if (head.got === head.length) {
        const skip = Math.min(head.trailer, chunk.length - pos);
        head.trailer -= skip;
        pos += skip;
        if (head.trailer === 0) {
          this.queue.shift();
          head.resolve(head.length);
        }
      }
    }
  }

  /** Handles a header line for `head`; returns true when the reply is complete. */
  private onLine(head: Pending, text: string): boolean {
    if (text.startsWith('-')) {
      this.queue.shift();
      head.reject(new Error(text.slice(1)));
      return true;
    }
    if (head.kind === 'ok') {
      this.queue.shift();
      if (text === '+OK') head.resolve();
      else head.reject(new Error(`unexpected reply ${text}`));
      return true;
    }
    const length = Number(text.slice(1));
    if (!text.startsWith('$') || !Number.isSafeInteger(length)) {
      this.queue.shift();
      head.reject(new Error(`unexpected reply ${text}`));
      return true;
    }
    if (length < 0 || length > head.dest.byteLength) {
      this.queue.shift();
      head.reject(new Error(length < 0 ? 'key is missing' : `value of ${length} bytes does not fit in ${head.dest.byteLength}`));
      return true;
    }
    head.length = length;
    if (length === 0) head.got = 0;
    return false;
  }
}

/** rawSet over RespBulkSocket: the caller's views go to the socket uncopied. */
export async function socketSet(sock: RespBulkSocket, payload: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(payload.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const start = i * opts.chunkBytes;
    await sock.set(`${opts.keyPrefix}:${i}`, payload.subarray(start, Math.min(start + opts.chunkBytes, payload.byteLength)));
  });
  return throughput(payload.byteLength, (performance.now() - t0) / 1000);
}

/** rawGet over RespBulkSocket: each value lands straight in its place in `dest`. */
export async function socketGet(sock: RespBulkSocket, dest: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(dest.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const start = i * opts.chunkBytes;
    const view = dest.subarray(start, Math.min(start + opts.chunkBytes, dest.byteLength));
    const got = await sock.getInto(`${opts.keyPrefix}:${i}`, view);
    if (got !== view.byteLength) throw new Error(`socket GET ${opts.keyPrefix}:${i}: ${got} bytes, expected ${view.byteLength}`);
  });
  return throughput(dest.byteLength, (performance.now() - t0) / 1000);
}
