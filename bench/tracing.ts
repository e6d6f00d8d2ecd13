/**
 * The cost of the tracing channels in `npm run bench` (issue 14): the same 1-rank save
 * (--bytes, default 1 GiB; --quick 32 MiB) in this process, in interleaved rounds without a
 * subscriber and with one (createMetrics on a private registry, plus a subscriber to every
 * event of redis-dcp:save), overwriting one checkpoint (steady state). The A/B difference of
 * the medians is within the machine's noise; the bound beside it is the measured cost of the
 * instrumentation itself (event, tracePromise, phase clock, metrics) per save, divided by
 * the save's time. See docs/performance.md, "Tracing channels".
 */
import { tracingChannel } from 'node:diagnostics_channel';
import { Registry } from 'prom-client';
import { save } from '../src/core/save.js';
import { Tensor } from '../src/core/tensor.js';
import { SAVE_CHANNEL, saveChannel, traced, type SaveEvent } from '../src/core/tracing.js';
import { createMetrics } from '../src/observe/metrics.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { PhaseClock } from '../src/core/progress.js';
import type { RedisTarget } from './redis-target.js';
import { median } from './report.js';

export interface TracingFigures {
  readonly tracing: {
    readonly state_dict_bytes: number;
    readonly rounds: number;
    readonly save_s_median_unsubscribed: number;
    readonly save_s_median_subscribed: number;
    /** (subscribed − unsubscribed) / unsubscribed, from the medians: noise-dominated. */
    readonly overhead_ab_ratio: number;
    /** Instrumentation work per traced save (µs), measured without I/O. */
    readonly instrumentation_us_per_save: number;
    /** instrumentation_us_per_save / the unsubscribed save time. */
    readonly overhead_bound_ratio: number;
  };
}


/** What a subscribed save adds besides the I/O: event, tracePromise's publications, the phase clock, the subscribers. */
async function instrumentationMicros(segments: number): Promise<number> {
  const n = 20_000;
  const began = performance.now();
  for (let i = 0; i < n; i++) {
    await traced(saveChannel, (): SaveEvent => ({ checkpointId: 'x', rank: 0, worldSize: 1, bytes: 0, phases: { plan: 0, stage: 0, write: 0, commit: 0 }, async: false }), async (event) => {
      const clock = new PhaseClock(['plan', 'stage', 'write', 'commit'] as const);
      for (const phase of ['plan', 'write', 'commit'] as const) clock.enter(phase);
      for (let s = 0; s < segments; s++) clock.transferred(1);
      clock.finish();
      if (event) Object.assign(event.phases, clock.phases);
    });
  }
  return ((performance.now() - began) * 1000) / n;
}

export async function tracingFigures(target: RedisTarget, prefix: string, bytes: number, rounds: number, note: (text: string) => void): Promise<TracingFigures> {
  const parts = 16;
  const tensors = Array.from({ length: parts }, (_, i) => new Tensor('uint8', [Math.floor(bytes / parts)], new Uint8Array(Math.floor(bytes / parts)).fill(i + 1)));
  const stateDict = Object.fromEntries(tensors.map((t, i) => [`layer${i}`, t]));
  const once = async () => {
    const began = performance.now();
    await save(stateDict, { checkpointId: 'run/tracing', storageWriter: new RedisStorageWriter({ redis: target.redis, prefix }) });
    return (performance.now() - began) / 1000;
  };
  const subscribe = () => {
    const metrics = createMetrics({ registry: new Registry() });
    const seen: SaveEvent[] = [];
    const all = { start: () => undefined, end: () => undefined, asyncStart: () => undefined, asyncEnd: (e: unknown) => void seen.push(e as SaveEvent), error: () => undefined };
    tracingChannel(SAVE_CHANNEL).subscribe(all);
    return () => {
      tracingChannel(SAVE_CHANNEL).unsubscribe(all);
      metrics.close();
      if (seen.length !== 1 || seen[0]!.bytes !== bytes - (bytes % parts)) throw new Error(`the subscriber saw ${seen.length} events (${seen[0]?.bytes} bytes)`);
    };
  };
  const before = saveChannel.hasSubscribers;
  if (before) note('warning: something in this process already subscribes to redis-dcp:save; the "no subscriber" rounds are not');
  note(`tracing channels: ${rounds} rounds of a ${(bytes / 2 ** 20).toFixed(0)} MiB save without and with a subscriber (after one warm-up save)`);
  await once();
  const off: number[] = [];
  const on: number[] = [];
  for (let r = 0; r < rounds; r++) {
    off.push(await once());
    const stop = subscribe();
    on.push(await once());
    stop();
  }
  if (saveChannel.hasSubscribers !== before) throw new Error('a subscriber was left behind');
  const micros = await instrumentationMicros(Math.ceil(bytes / (4 * 2 ** 20)));
  const unsubscribed = median(off);
  const subscribed = median(on);
  return {
    tracing: {
      state_dict_bytes: bytes,
      rounds,
      save_s_median_unsubscribed: unsubscribed,
      save_s_median_subscribed: subscribed,
      overhead_ab_ratio: (subscribed - unsubscribed) / unsubscribed,
      instrumentation_us_per_save: micros,
      overhead_bound_ratio: micros / 1e6 / unsubscribed,
    },
  };
}

export function printTracingTable(f: TracingFigures): void {
  const t = f.tracing;
  console.log(`\nTracing channels (1-rank save of ${(t.state_dict_bytes / 2 ** 20).toFixed(0)} MiB, ${t.rounds} interleaved rounds)`);
  console.log('no subscriber s  subscribed s  A/B difference  instrumentation µs/save  bound (target ≤ 1 %)');
  console.log(`${t.save_s_median_unsubscribed.toFixed(3).padStart(15)}  ${t.save_s_median_subscribed.toFixed(3).padStart(12)}  ${(100 * t.overhead_ab_ratio).toFixed(2).padStart(13)} %  ${t.instrumentation_us_per_save.toFixed(1).padStart(23)}  ${(100 * t.overhead_bound_ratio).toFixed(4)} %`);
}
