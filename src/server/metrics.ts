/**
 * The admin API's Prometheus metrics (GET /metrics, README "Metrics"): per app, the
 * catalog gauges (set from CheckpointCatalog.usage() at scrape time, the numbers GET /usage
 * serves) and the HTTP request histogram; per process, prom-client's default process
 * metrics and the library's redis_dcp_* metrics (src/observe/metrics.ts).
 */
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { createMetrics } from '../observe/metrics.js';
import type { UsageReport } from '../redis/catalog-schemas.js';
import { CHECKPOINT_STATES, type CheckpointState } from '../redis/checkpoint-store.js';

/** The gauge values of one usage report (exported for the test that compares them with GET /usage). */
export interface CatalogGauges {
  readonly checkpoints: Record<CheckpointState, number>;
  /** logical: bytes of the state dicts (usage.logicalBytes); stored: what they hold in Redis (committed + writing + incomplete bytes: shared incremental pieces once); pooled: the recycling pool. */
  readonly bytes: { readonly logical: number; readonly stored: number; readonly pooled: number };
  readonly usedMemory: number;
  /** 0 when Redis has no maxmemory (as Redis itself reports it). */
  readonly maxMemory: number;
}

export function catalogGauges(report: UsageReport): CatalogGauges {
  return {
    checkpoints: { committed: report.committed.checkpoints, writing: report.writing.checkpoints, incomplete: report.incomplete.checkpoints },
    bytes: { logical: report.logicalBytes, stored: report.committed.bytes + report.writing.bytes + report.incomplete.bytes, pooled: report.pooled.bytes },
    usedMemory: report.redis.usedMemory,
    maxMemory: report.redis.maxMemory ?? 0,
  };
}

let processRegistry: Registry | undefined;

/** Default process metrics and the library metrics: once per process (the tracing channels are process-wide too). */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    createMetrics({ registry: processRegistry });
  }
  return processRegistry;
}

export class AdminMetrics {
  readonly registry = new Registry();
  private readonly requests: Histogram<'method' | 'route' | 'status_code'>;
  private readonly checkpoints: Gauge<'state'>;
  private readonly bytes: Gauge<'kind'>;
  private readonly usedMemory: Gauge;
  private readonly maxMemory: Gauge;

  constructor(private readonly usage: () => Promise<UsageReport>) {
    const registers = [this.registry];
    this.requests = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Admin API requests by method, route template and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.checkpoints = new Gauge({ name: 'redis_dcp_checkpoints', help: 'Checkpoints in the catalog by state (as GET /checkpoints?state= lists them).', labelNames: ['state'], registers });
    this.bytes = new Gauge({ name: 'redis_dcp_checkpoint_bytes', help: 'Bytes of the checkpoints (as GET /usage reports): logical (the state dicts), stored (held in Redis; shared incremental pieces once), pooled (segment recycling).', labelNames: ['kind'], registers });
    this.usedMemory = new Gauge({ name: 'redis_dcp_redis_used_memory_bytes', help: 'Redis INFO used_memory (summed over Cluster masters).', registers });
    this.maxMemory = new Gauge({ name: 'redis_dcp_redis_maxmemory_bytes', help: 'Redis maxmemory; 0 when unlimited.', registers });
    processMetrics();
  }

  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    this.requests.observe({ method, route, status_code: String(statusCode) }, seconds);
  }

  /** Reads the usage report, sets the gauges and renders every metric in the text exposition format. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const gauges = catalogGauges(await this.usage());
    for (const state of CHECKPOINT_STATES) this.checkpoints.set({ state }, gauges.checkpoints[state]);
    for (const [kind, value] of Object.entries(gauges.bytes)) this.bytes.set({ kind }, value);
    this.usedMemory.set(gauges.usedMemory);
    this.maxMemory.set(gauges.maxMemory);
    const [own, shared] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return { contentType: this.registry.contentType, body: `${own}\n${shared}` };
  }
}
