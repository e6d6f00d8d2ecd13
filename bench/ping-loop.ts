/**
 * A Redis PING loop in a process of its own (`npm run bench`'s admin API part): PINGs the
 * Redis at argv[2] every 5 ms until its stdin closes, then prints the round trips in ms as
 * one JSON line. In its own process so that its figures are the server's latency, not the
 * event loop of the process serving the pages.
 */
import { Redis } from 'ioredis';

const redis = new Redis(process.argv[2]!, { disableClientInfo: true });
let stop = false;
process.stdin.on('close', () => (stop = true)).on('end', () => (stop = true)).resume();
const latencies: number[] = [];
await redis.ping();
process.stdout.write('PINGING\n');
while (!stop) {
  const t0 = performance.now();
  await redis.ping();
  latencies.push(performance.now() - t0);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
redis.disconnect();
process.stdout.write(JSON.stringify(latencies) + '\n');
