/**
 * The optional metrics helper (README "Metrics"): subscribes to the redis-dcp:save/load/delete
 * tracing channels and keeps prom-client metrics of what this process saved, loaded and
 * deleted, for a trainer that already serves /metrics. Names follow Prometheus conventions
 * (base units, `_total` counters, `redis_dcp_` prefix); they are a contract.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Counter, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import { CheckpointError, codeOfError } from '../core/errors.js';
import { DELETE_CHANNEL, LOAD_CHANNEL, SAVE_CHANNEL, type DeleteEvent, type LoadEvent, type SaveEvent } from '../core/tracing.js';

/** Seconds: from a 10 ms metadata write to a 10-minute multi-GiB save. */
export const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface DcpMetricsOptions {
  /** Where to register the metrics (default: prom-client's global registry). */
  readonly registry?: Registry;
  /** Histogram buckets in seconds (default DURATION_BUCKETS). */
  readonly buckets?: readonly number[];
}

export interface DcpMetrics {
  readonly registry: Registry;
  /** Stops listening and removes the metrics from the registry. */
  close(): void;
}

/** The metric names (a contract: dashboards and alerts use them). */
export const DCP_METRIC_NAMES = [
  'redis_dcp_save_duration_seconds',
  'redis_dcp_saved_bytes_total',
  'redis_dcp_save_failures_total',
  'redis_dcp_async_blocked_seconds',
  'redis_dcp_load_duration_seconds',
  'redis_dcp_loaded_bytes_total',
  'redis_dcp_load_failures_total',
  'redis_dcp_delete_duration_seconds',
  'redis_dcp_deleted_bytes_total',
] as const;

/** The code a failure is counted under: for a CheckpointError, the code of the lowest rank's failure. */
export function failureCode(error: unknown): string {
  if (error instanceof CheckpointError) return codeOfError(error.cause) ?? error.code;
  return codeOfError(error) ?? 'ERROR';
}

const active = new WeakMap<Registry, DcpMetrics>();

/**
 * Registers the redis_dcp_* metrics and keeps them current from the tracing channels.
 * One set per registry: a second call with the same registry returns the first.
 */
export function createMetrics(options: DcpMetricsOptions = {}): DcpMetrics {
  const registry = options.registry ?? defaultRegistry;
  const existing = active.get(registry);
  if (existing) return existing;
  const buckets = [...(options.buckets ?? DURATION_BUCKETS)];
  const registers = [registry];
  const saveDuration = new Histogram({ name: 'redis_dcp_save_duration_seconds', help: 'Duration of saves on this process\'s ranks, by phase (plan, stage, write, commit) and in total.', labelNames: ['phase'] as const, buckets, registers });
  const savedBytes = new Counter({ name: 'redis_dcp_saved_bytes_total', help: 'Bytes written by committed saves of this process\'s ranks.', registers });
  const saveFailures = new Counter({ name: 'redis_dcp_save_failures_total', help: 'Failed saves on this process\'s ranks, by error code.', labelNames: ['code'] as const, registers });
  const blocked = new Histogram({ name: 'redis_dcp_async_blocked_seconds', help: 'How long asyncSave blocked its caller (waiting for the previous save, then staging).', buckets, registers });
  const loadDuration = new Histogram({ name: 'redis_dcp_load_duration_seconds', help: 'Duration of loads on this process\'s ranks, by phase (plan, read) and in total.', labelNames: ['phase'] as const, buckets, registers });
  const loadedBytes = new Counter({ name: 'redis_dcp_loaded_bytes_total', help: 'Bytes read by successful loads of this process\'s ranks.', registers });
  const loadFailures = new Counter({ name: 'redis_dcp_load_failures_total', help: 'Failed loads on this process\'s ranks, by error code.', labelNames: ['code'] as const, registers });
  const deleteDuration = new Histogram({ name: 'redis_dcp_delete_duration_seconds', help: 'Duration of checkpoint deletes made by this process.', buckets, registers });
  const deletedBytes = new Counter({ name: 'redis_dcp_deleted_bytes_total', help: 'Logical bytes of the checkpoints this process deleted.', registers });

  const startedAt = new WeakMap<object, number>();
  const onStart = (message: unknown) => void startedAt.set(message as object, performance.now());
  const totalSeconds = (event: object) => (performance.now() - (startedAt.get(event) ?? performance.now())) / 1000;

  const onSaveEnd = (message: unknown) => {
    const e = message as SaveEvent;
    if (e.async && e.blockedMs !== undefined) blocked.observe(e.blockedMs / 1000);
    if (e.error !== undefined) return saveFailures.inc({ code: failureCode(e.error) });
    for (const [phase, ms] of Object.entries(e.phases)) saveDuration.observe({ phase }, ms / 1000);
    saveDuration.observe({ phase: 'total' }, totalSeconds(e));
    savedBytes.inc(e.bytes);
  };
  const onLoadEnd = (message: unknown) => {
    const e = message as LoadEvent;
    if (e.error !== undefined) return loadFailures.inc({ code: failureCode(e.error) });
    for (const phase of ['plan', 'read'] as const) loadDuration.observe({ phase }, e.phases[phase] / 1000);
    loadDuration.observe({ phase: 'total' }, totalSeconds(e));
    loadedBytes.inc(e.bytes);
  };
  const onDeleteEnd = (message: unknown) => {
    const e = message as DeleteEvent;
    if (e.error !== undefined) return;
    deleteDuration.observe(e.phases.delete / 1000);
    deletedBytes.inc(e.bytes);
  };

  const subscriptions: Array<[string, (message: unknown) => void]> = [
    [`tracing:${SAVE_CHANNEL}:start`, onStart],
    [`tracing:${SAVE_CHANNEL}:asyncEnd`, onSaveEnd],
    [`tracing:${LOAD_CHANNEL}:start`, onStart],
    [`tracing:${LOAD_CHANNEL}:asyncEnd`, onLoadEnd],
    [`tracing:${DELETE_CHANNEL}:asyncEnd`, onDeleteEnd],
  ];
  for (const [name, fn] of subscriptions) subscribe(name, fn);
  const metrics: DcpMetrics = {
    registry,
    close() {
      if (active.get(registry) !== metrics) return;
      active.delete(registry);
      for (const [name, fn] of subscriptions) unsubscribe(name, fn);
      for (const name of DCP_METRIC_NAMES) registry.removeSingleMetric(name);
    },
  };
  active.set(registry, metrics);
  return metrics;
}
