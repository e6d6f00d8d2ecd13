/**
 * The piece ids an incremental save's memory pre-flight computed (prepareLocalPlan), kept
 * for writeData of the same save so each piece is hashed once. An item's ids are reused only
 * for the very same byte view (same array, or same buffer, offset and length); like ids
 * found by XXH64 they are unverified: every piece written under one is checked by BLAKE3
 * first. See docs/format.md, "Incremental saves".
 */

interface Planned {
  readonly view: Uint8Array;
  readonly ids: readonly string[];
}

/** Whether `a` and `b` are views of the same bytes: the same array, or the same buffer, offset and length. */
export function sameView(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.byteLength === b.byteLength);
}

export class PlannedPieces {
  private readonly byItem = new Map<string, Planned>();

  /** Records the ids of `item` (its metadataIndexKey), hashed from `view`. */
  add(item: string, view: Uint8Array, ids: readonly string[]): void {
    this.byItem.set(item, { view, ids });
  }

  /** The ids planned for `item` if `view` is the view they were hashed from, else undefined (hash again). */
  idsFor(item: string, view: Uint8Array): readonly string[] | undefined {
    const planned = this.byItem.get(item);
    return planned && sameView(planned.view, view) ? planned.ids : undefined;
  }

  get size(): number {
    return this.byItem.size;
  }
}
