/**
 * Starts and stops private redis-server processes for tests: free ports, own temp
 * dirs, stopped by PID. Never touches a server the tests did not start.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis, Cluster } from 'ioredis';

const execFileAsync = promisify(execFile);
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
  /** Reuse a port (to restart a stopped server in place). */
  port?: number;
  /** Reuse a directory (to restart with the same AOF). */
  dir?: string;
}

export class RedisServer {
  readonly port: number;
  readonly dir: string;
  private child: ChildProcess | undefined;
  private readonly args: string[];
  private readonly ownsDir: boolean;
  private readonly clients: Array<Redis | Cluster> = [];

  private constructor(port: number, dir: string, args: string[], ownsDir: boolean) {
    this.port = port;
    this.dir = dir;
    this.args = args;
    this.ownsDir = ownsDir;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const port = options.port ?? (await freePort());
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'redis-dcp-test-'));
    const server = new RedisServer(port, dir, options.args ?? [], options.dir === undefined);
    await server.spawn();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** A client that is closed with the server. */
  client(): Redis {
    const client = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 3, disableClientInfo: true });
    client.on('error', () => {});
    this.clients.push(client);
    return client;
  }

  async spawn(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--logfile', join(this.dir, 'redis.log'), ...this.args];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.child = child;
    live.add(child);
    child.once('exit', () => live.delete(child));
    await waitForPing(this.port, child);
  }

  /** SIGKILL: the node dies without saving. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** Graceful stop (SIGTERM), then remove the temp dir unless `keepDir`. */
  async stop(keepDir = false): Promise<void> {
    for (const c of this.clients.splice(0)) c.disconnect();
    await this.signalAndWait('SIGTERM');
    if (!keepDir && this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill(signal);
    await exited;
  }
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited with code ${child.exitCode}`);
    try {
      const { stdout } = await execFileAsync('redis-cli', ['-p', String(port), 'PING']);
      if (stdout.trim() === 'PONG') return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server on port ${port} did not answer PING: ${String(lastError)}`);
}

export interface ClusterFixtureOptions {
  /** Replicas per master (default 0). */
  readonly replicas?: number;
  /** cluster-node-timeout: how long a master may be silent before a replica takes over (default 5000 ms). */
  readonly nodeTimeoutMs?: number;
}

/** A Redis Cluster of `masters` nodes (and `replicas` per master) on free ports. */
export class RedisClusterFixture {
  readonly nodes: RedisServer[];
  private readonly clients: Cluster[] = [];

  private constructor(nodes: RedisServer[]) {
    this.nodes = nodes;
  }

  static async start(masters = 3, { replicas = 0, nodeTimeoutMs = 5000 }: ClusterFixtureOptions = {}): Promise<RedisClusterFixture> {
    const nodes = await Promise.all(
      Array.from({ length: masters * (1 + replicas) }, async () => {
        const port = await freePort();
        return RedisServer.start({ port, args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(nodeTimeoutMs), '--maxmemory-policy', 'noeviction'] });
      }),
    );
    const fixture = new RedisClusterFixture(nodes);
    await execFileAsync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes']);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const states = await Promise.all(nodes.map(async (n) => (await execFileAsync('redis-cli', ['-p', String(n.port), 'CLUSTER', 'INFO'])).stdout));
      const replicasUp = replicas === 0 || (await execFileAsync('redis-cli', ['-p', String(nodes[0]!.port), 'CLUSTER', 'NODES'])).stdout.split('\n').filter((l) => / slave /.test(l) && / connected/.test(l)).length === masters * replicas;
      if (replicasUp && states.every((s) => s.includes('cluster_state:ok'))) break;
      if (Date.now() > deadline) throw new Error('cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 200));
    }
    return fixture;
  }

  client(): Cluster {
    const cluster = new Cluster(
      this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      { redisOptions: { disableClientInfo: true }, enableReadyCheck: true },
    );
    cluster.on('error', () => {});
    this.clients.push(cluster);
    return cluster;
  }

  async stop(): Promise<void> {
    for (const c of this.clients.splice(0)) c.disconnect();
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
}
