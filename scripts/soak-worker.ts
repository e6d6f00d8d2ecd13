/**
 * One soak process: saves and loads small checkpoints in a loop until its deadline,
 * verifying every loaded byte. argv: redisUrl workerIndex seconds
 * Prints one JSON line: {ops, errors, saveMs[], loadMs[], rssStart, rssEnd, firstErrors}.
 */
import { load, save, Tensor, RedisStorageReader, RedisStorageWriter } from '../src/index.js';
import { Redis } from 'ioredis';

const [url, indexText, secondsText] = process.argv.slice(2);
const worker = Number(indexText);
const started = Date.now();
const deadline = started + Number(secondsText) * 1000;
/** RSS is compared from a third of the run on, after heap and JIT warm-up. */
const warmAt = started + (deadline - started) / 3;
const redis = new Redis(url!, { disableClientInfo: true });

/** Deterministic contents for (worker, round): a mismatch on load means corruption. */
function stateDict(round: number) {
  const n = 1024 + ((round * 7919 + worker * 104729) % (64 * 1024));
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = ((round * 31 + i) % 9973) + worker / 8;
  const ids = new Int32Array(97).map((_, i) => round * 97 + i);
  return { model: { w: new Tensor('float32', [n], data), ids: new Tensor('int32', [97], ids) }, round, tag: `w${worker}` };
}

const saveMs: number[] = [];
const loadMs: number[] = [];
const firstErrors: string[] = [];
let ops = 0;
let errors = 0;
let rssStart = 0;
const writer = new RedisStorageWriter({ redis, lockWaitMs: 5000 });
const reader = new RedisStorageReader({ redis });
for (let round = 0; Date.now() < deadline; round++) {
  // Five rotating ids per worker (overwrite, as training does) plus one id shared by every worker (lock contention).
  const id = round % 4 === 3 ? 'soak/shared' : `soak/w${worker}/ck-${round % 5}`;
  try {
    let t0 = performance.now();
    const sd = stateDict(round);
    await save(sd, { checkpointId: id, storageWriter: writer });
    saveMs.push(performance.now() - t0);
    if (id !== 'soak/shared') {
      const dest = { model: { w: new Tensor('float32', sd.model.w.shape), ids: new Tensor('int32', [97]) }, round: -1, tag: '' };
      t0 = performance.now();
      await load(dest, { checkpointId: id, storageReader: reader });
      loadMs.push(performance.now() - t0);
      const same = Buffer.compare(Buffer.from(dest.model.w.bytes), Buffer.from(sd.model.w.bytes)) === 0 && Buffer.compare(Buffer.from(dest.model.ids.bytes), Buffer.from(sd.model.ids.bytes)) === 0;
      if (!same || dest.round !== round || dest.tag !== sd.tag) throw new Error(`loaded data differs from what was saved (${id}, round ${round})`);
    }
    ops++;
  } catch (err) {
    errors++;
    if (firstErrors.length < 5) firstErrors.push((err as Error).message);
  }
  if (rssStart === 0 && Date.now() >= warmAt) rssStart = process.memoryUsage().rss;
}
console.log(JSON.stringify({ worker, ops, errors, saveMs, loadMs, rssStart, rssEnd: process.memoryUsage().rss, firstErrors }));
await writer.close();
await reader.close();
redis.disconnect();
