/**
 * fast-check generators of checkpoint ids shared by the property tests
 * (test/redis/library-ids-property.test.ts, test/server/route-ids-property.test.ts), and the
 * id rules as docs/format.md states them, written independently of src/redis/checkpoint-id.ts.
 */
import fc from 'fast-check';
import { CHECKPOINT_ID_MAX_LENGTH } from '../../src/redis/checkpoint-id.js';

/** The id rules as docs/format.md states them, written independently of checkpoint-id.ts. */
export function specValid(id: string): boolean {
  if (!/^[A-Za-z0-9._\-/:]+$/.test(id) || id.length > CHECKPOINT_ID_MAX_LENGTH) return false;
  if (id.startsWith('/') || id.endsWith('/') || id.includes('..')) return false;
  return id.split('/').every((seg) => seg !== '' && seg !== '.');
}

/** Lone surrogates survive in JS strings but are not Unicode: they cannot be UTF-8 encoded. */
export function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

export const NASTY = [
  '{', '}', '{}', '{x}', ':', '*', '?', '[', ']', '[a-z]', '..', '.', '/', '//', '\\', '\u0000', '\u0001', '\u007f',
  '%', '%2F', '%2f', '%00', '%25', '%7B', '%2E%2E', '%E0%A4%A', '%ZZ', '%ED%A0%80', ' ', '\t', '\n', '\r\n', '#', '&', '=', '+', ';', ',', '~',
  '"', "'", '<', '>', '`', '$', '@', '!', '(', ')', '\u00e9', '\u00ff', '\u0100', '\u{1F600}', '\uFEFF', '\u202E', '\u200B', '\u0130', '\u017F', '\u212A',
  '\uFF1A', '\uFF0F', '\uD800', '\uDFFF', '\uDBFF\uDC00', 'dcp', 'dcp:', 'ckpt', 'data', 'catalog', 'fence', 'other:key', '__proto__', 'redis://', 'redis://h:1/0/',
  'a', 'Z', '0', '9', '-', '_',
];
export const validPiece = fc.stringMatching(/^[A-Za-z0-9_:-]{1,6}$/);
export const loneSurrogates = fc.string({ unit: fc.constantFrom('\uD800', '\uDBFF', '\uDC00', '\uDFFF', 'a', '/'), minLength: 1, maxLength: 6 });

/** Arbitrary strings, weighted towards the characters that matter for keys, URLs and globs. */
export const anyString = fc.oneof(
  { arbitrary: fc.string({ maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 20 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 20 }), weight: 1 },
  { arbitrary: fc.array(fc.oneof(fc.constantFrom(...NASTY), validPiece), { maxLength: 8 }).map((a) => a.join('')), weight: 4 },
  { arbitrary: loneSurrogates, weight: 1 },
  {
    arbitrary: fc.tuple(fc.constantFrom(511, 512, 513, 1000, 4100, 5000), fc.constantFrom('a', 'a/', '.', '\u00e9', ':', '{')).map(([n, c]) => c.repeat(Math.ceil(n / c.length)).slice(0, n)),
    weight: 1,
  },
  { arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', '/', '.', ':', '-', '_', '0', '*'), minLength: 400, maxLength: 700 }), weight: 1 },
);

/** Ids that follow every rule, including edge cases that look like key syntax or sentinels. */
export const validIdExcept = (exclude: readonly string[]) =>
  fc
  .oneof(
    { arbitrary: fc.stringMatching(/^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,12}(\/[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,12}){0,3}$/), weight: 6 },
    { arbitrary: fc.constantFrom('ckpt', 'data', 'catalog', 'fence', ':', '::', '-', '_', 'a:b:c', 'dcp:catalog', 'other:key', 'x.y', '.hidden', 'a/.b', 'keep', 'keep/me/x', 'KEEP/ME'), weight: 2 },
    { arbitrary: fc.integer({ min: 480, max: CHECKPOINT_ID_MAX_LENGTH }).map((n) => `v/${'w'.repeat(n - 2)}`), weight: 1 },
  )
  .filter((id) => specValid(id) && !exclude.includes(id));
