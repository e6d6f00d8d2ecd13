/**
 * A load's pin on a committed checkpoint (docs/format.md, "Load pins"): taken before the
 * reader reads the metadata, extended every third of its TTL while the load runs, removed
 * when it ends; a process that dies leaves a pin that expires after the TTL. While it lives,
 * delete refuses and an overwrite keeps the save it replaced (gc drops it later).
 */
import { randomBytes } from 'node:crypto';
import type { CheckpointStore } from './checkpoint-store.js';
import { CLEANUP_DEADLINE_MS, within } from './deadline.js';

export class LoadPin {
  private readonly timer: NodeJS.Timeout;
  private extending: Promise<void> | undefined;
  private released = false;

  private constructor(
    private readonly store: CheckpointStore,
    readonly pinId: string,
    ttlMs: number,
  ) {
    this.timer = setInterval(() => {
      // A failed extension is not fatal: the load goes on; at worst the pin lapses.
      this.extending ??= store.pin(pinId, ttlMs).then(
        () => void (this.extending = undefined),
        () => void (this.extending = undefined),
      );
    }, Math.max(50, ttlMs / 3));
    this.timer.unref();
  }

  /** Pins `store`'s committed checkpoint (CHECKPOINT_NOT_FOUND / CHECKPOINT_NOT_COMMITTED like a load). */
  static async take(store: CheckpointStore, ttlMs: number): Promise<LoadPin> {
    const pinId = randomBytes(9).toString('base64url');
    await store.pin(pinId, ttlMs);
    return new LoadPin(store, pinId, ttlMs);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    // Unreachable Redis: the pin expires with its TTL.
    await within(this.extending ?? Promise.resolve(), CLEANUP_DEADLINE_MS);
    await within(this.store.unpin(this.pinId).catch(() => {}), CLEANUP_DEADLINE_MS);
  }
}
