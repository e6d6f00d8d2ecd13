import { RedisServer } from '../test/helpers/redis-server.js';
import { startFixture, allDone } from '../test/helpers/child.js';
async function main() {
const server = await RedisServer.start();
const ranks = [0, 1].map((rank) => startFixture('test/fixtures/async-rank.ts', ['kill', server.url, 'k/1', String(rank), '2', 'g-dbg', '4000'], rank === 1 ? { PAUSE_MS: '3000' } : {}));
ranks.forEach((r, i) => { r.process.stdout!.on('data', (d) => console.log(i, 'OUT', String(d))); r.process.stderr!.on('data', (d) => console.log(i, 'ERR', String(d))); });
const res = await allDone(ranks);
for (const r of res) console.log(r.code, r.signal);
await server.stop();
}
main();
