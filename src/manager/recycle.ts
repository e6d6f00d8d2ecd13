/**
 * Segment recycling for the manager's loop (docs/performance.md, "Segment recycling"):
 * what retention deletes after step k is written over by step k+1, so the pool TTL must
 * outlast one save interval. Unless the caller set recycleTtlMs, the TTL is 3 × the median
 * of the last intervals between saves, between 10 s and 1 h (60 s before two saves).
 */
const MIN_TTL_MS = 10_000;
const MAX_TTL_MS = 3_600_000;
const FIRST_TTL_MS = 60_000;

export class RecycleClock {
  private readonly times: number[] = [];

  /** `fixed`: the caller's recycleTtlMs (0 = off), or undefined for the derived TTL. */
  constructor(private readonly fixed: number | undefined) {}

  /** A save committed now. */
  saved(now = Date.now()): void {
    this.times.push(now);
    if (this.times.length > 6) this.times.shift();
  }

  ttlMs(): number {
    if (this.fixed !== undefined) return this.fixed;
    if (this.times.length < 2) return FIRST_TTL_MS;
    const gaps = this.times.slice(1).map((t, i) => t - this.times[i]!).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    return Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, Math.ceil(3 * median)));
  }
}
