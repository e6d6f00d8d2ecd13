/**
 * How a rank's bytes become data segments: items back to back in one stream, cut into
 * values whose sizes sit just inside allocator size classes. See docs/format.md, "Data segments".
 */
/**
 * 1 MiB minus 64 bytes: the value plus Redis' own header stays inside jemalloc's 1 MiB class (an
 * exact 1 MiB costs a 1.25 MiB slot). Redis reads a large value's bytes as they arrive, up to the
 * whole rest of the value in one go, and serves no other client meanwhile: 1 MiB values keep that
 * pause 4× shorter than 4 MiB ones at the same save speed (docs/performance.md, "Segment size").
 */
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024 - 64;
export const MAX_SEGMENT_BYTES = 512 * 1024 * 1024;

/** A part record: [rank, segment seq, offset, length, crc32c] (the crc is filled in when the segment is written). */
export type PartRecord = [number, number, number, number, number];

export interface Segment {
  readonly key: string;
  readonly seq: number;
  /** Bytes this segment takes (from segmentSizes). */
  readonly capacity: number;
  readonly pieces: Uint8Array[];
  /** Part records (one per piece) whose crc is filled in when the segment is written. */
  readonly parts: Array<[number, number, number, number, number]>;
  size: number;
}

/** Smallest tail piece worth fitting to a size class; below it Redis' classes are fine-grained. */
const MIN_FITTED_TAIL = 64 * 1024;

/**
 * How a rank's stream of `total` bytes is cut: full segments, then the tail as pieces of
 * 2^k − 64 bytes (each just inside a jemalloc size class) down to 64 KiB, then the rest.
 */
export function segmentSizes(total: number, segmentBytes: number): number[] {
  const sizes: number[] = [];
  let left = total;
  while (left >= segmentBytes) {
    sizes.push(segmentBytes);
    left -= segmentBytes;
  }
  for (let piece = 2 ** Math.floor(Math.log2(segmentBytes + 64)) - 64; left > 0 && piece >= MIN_FITTED_TAIL - 64; piece = (piece + 64) / 2 - 64) {
    if (left >= piece) {
      sizes.push(piece);
      left -= piece;
    }
  }
  if (left > 0) sizes.push(left);
  return sizes;
}

/** Segments of a rank's items and each item's location (its part records, in order). */
export function layoutSegments(items: readonly Uint8Array[], segmentBytes: number, rank: number, keyOf: (seq: number) => string): { segments: Segment[]; locations: Array<{ n: number; p: PartRecord[] }> } {
  const segments: Segment[] = [];
  const locations: Array<{ n: number; p: PartRecord[] }> = [];
  const sizes = segmentSizes(items.reduce((n, b) => n + b.byteLength, 0), segmentBytes);
  let open: Segment | undefined;
  for (const bytes of items) {
    const loc = { n: bytes.byteLength, p: [] as PartRecord[] };
    locations.push(loc);
    for (let off = 0; off < bytes.byteLength; ) {
      if (!open || open.size === open.capacity) {
        const seq = segments.length;
        open = { key: keyOf(seq), seq, capacity: sizes[seq]!, pieces: [], parts: [], size: 0 };
        segments.push(open);
      }
      const take = Math.min(open.capacity - open.size, bytes.byteLength - off);
      const part: PartRecord = [rank, open.seq, open.size, take, 0];
      open.pieces.push(bytes.subarray(off, off + take));
      open.parts.push(part);
      open.size += take;
      loc.p.push(part);
      off += take;
    }
  }
  return { segments, locations };
}
