/**
 * Metadata JSON: lossless round trip, and rejection of tampered input with a
 * METADATA_INVALID DcpError (never a TypeError).
 */
import t from 'tap';
import fc from 'fast-check';
import { DcpError } from '../../src/core/errors.js';
import { DCP_VERSION, type Metadata } from '../../src/core/metadata.js';
import { MAX_TENSOR_DIMS, metadataFromJSON, metadataToJSON } from '../../src/core/metadata-json.js';
import { tensorProperties } from '../../src/core/planner-utils.js';
import { DTYPES } from '../../src/core/tensor.js';

function sample(): Metadata {
  return {
    version: DCP_VERSION,
    stateDictMetadata: {
      'model.w': {
        type: 'tensor',
        properties: { ...tensorProperties('bfloat16'), requiresGrad: true },
        size: [8, 4],
        chunks: [
          { offsets: [0, 0], sizes: [4, 4] },
          { offsets: [4, 0], sizes: [4, 4] },
        ],
      },
      scalar: { type: 'tensor', properties: tensorProperties('float64'), size: [], chunks: [{ offsets: [], sizes: [] }] },
      empty: { type: 'tensor', properties: tensorProperties('int8'), size: [0, 3], chunks: [{ offsets: [0, 0], sizes: [0, 3] }] },
      step: { type: 'bytes', encoding: 'json' },
      blob: { type: 'bytes', encoding: 'raw' },
      '': { type: 'bytes', encoding: 'json' },
      'ünï.cödé': { type: 'bytes', encoding: 'json' },
    },
    plannerData: { 'model.w': ['model', 'w'], step: ['step'], 'layers.0': ['layers', 0] },
    storageData: { 'model.w@0,0': { key: 'k1', offset: 0, length: 64 }, list: [1, 'two', null, true] },
    storageMeta: { checkpointId: 'redis://host/ckpt', saveId: 's-1', modules: ['a', 'b'] },
  };
}

t.test('round trip is lossless', async (t) => {
  const md = sample();
  const text = metadataToJSON(md);
  const back = metadataFromJSON(text);
  t.same(back, md);
  t.strictSame(back, md, 'same types too (list indexes stay numbers)');
  t.equal(metadataToJSON(back), text, 'encoding is stable');
  t.same(metadataFromJSON(metadataToJSON({ stateDictMetadata: {} })), { stateDictMetadata: {} }, 'minimal metadata');
  t.notMatch(metadataToJSON({ stateDictMetadata: {}, storageMeta: undefined }), /null/, 'absent fields are omitted');
});

t.test('an FQN named __proto__ stays an own key', async (t) => {
  const text = '{"stateDictMetadata":{"__proto__":{"type":"bytes","encoding":"json"}}}';
  const md = metadataFromJSON(text);
  t.same(Object.keys(md.stateDictMetadata), ['__proto__']);
  t.equal(Object.getPrototypeOf(md.stateDictMetadata), Object.prototype);
  t.equal(metadataToJSON(md), text);
});

t.test('round trip of generated metadata (fast-check)', async (t) => {
  const dims = fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 4 });
  const tensorItem = dims.chain((size) =>
    fc.record({
      type: fc.constant('tensor' as const),
      properties: fc.record({
        dtype: fc.constantFrom(...DTYPES),
        layout: fc.constant('strided' as const),
        requiresGrad: fc.boolean(),
        memoryFormat: fc.constant('contiguous_format' as const),
        pinMemory: fc.boolean(),
      }),
      size: fc.constant(size),
      chunks: fc.array(
        fc.tuple(...size.map((s) => fc.integer({ min: 0, max: s }).chain((o) => fc.tuple(fc.constant(o), fc.integer({ min: 0, max: s - o }))))).map((pairs) => ({
          offsets: pairs.map(([o]) => o),
          sizes: pairs.map(([, l]) => l),
        })),
        { maxLength: 4 },
      ),
    }),
  );
  const bytesItem = fc.record({ type: fc.constant('bytes' as const), encoding: fc.constantFrom('raw' as const, 'json' as const) });
  const metadata = fc.record(
    {
      version: fc.constant(DCP_VERSION),
      stateDictMetadata: fc.dictionary(fc.string(), fc.oneof(tensorItem, bytesItem), { maxKeys: 6 }),
      plannerData: fc.jsonValue(),
      storageData: fc.jsonValue(),
      storageMeta: fc.record({ checkpointId: fc.string(), modules: fc.array(fc.string()) }, { requiredKeys: [] }),
    },
    { requiredKeys: ['stateDictMetadata'] },
  );
  fc.assert(
    fc.property(metadata, (md) => {
      const normalized = JSON.parse(JSON.stringify(md)) as Metadata; // -0 → 0, as any JSON does
      const back = metadataFromJSON(metadataToJSON(md));
      t.strictSame(back, normalized);
      return true;
    }),
    { numRuns: 200, seed: 2026 },
  );
});

function tampered(mutate: (doc: Record<string, any>) => void): string {
  const doc = JSON.parse(metadataToJSON(sample())) as Record<string, any>;
  mutate(doc);
  return JSON.stringify(doc);
}

t.test('tampered inputs are rejected with METADATA_INVALID naming the field', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"stateDictMetadata": {', /\(text\): not valid JSON/],
    ['empty text', '', /not valid JSON/],
    ['array root', '[]', /\(root\): expected an object, got an array/],
    ['null root', 'null', /\(root\): expected an object, got null/],
    ['string root', '"x"', /\(root\): expected an object/],
    ['unknown top-level field', tampered((d) => (d.extra = 1)), /unexpected field "extra"/],
    ['missing stateDictMetadata', tampered((d) => delete d.stateDictMetadata), /stateDictMetadata: expected an object, got nothing \(the field is missing\)/],
    ['stateDictMetadata is a list', tampered((d) => (d.stateDictMetadata = [])), /stateDictMetadata: expected an object, got an array/],
    ['item is null', tampered((d) => (d.stateDictMetadata.step = null)), /stateDictMetadata\["step"\]: expected an object, got null/],
    ['unknown item type', tampered((d) => (d.stateDictMetadata.step.type = 'pickle')), /\["step"\]\.type: expected "tensor" or "bytes", got "pickle"/],
    ['bad encoding', tampered((d) => (d.stateDictMetadata.step.encoding = 'pickle')), /\["step"\]\.encoding: expected "raw" or "json"/],
    ['extra item field', tampered((d) => (d.stateDictMetadata.step.evil = 1)), /\["step"\]: unexpected field "evil"/],
    ['unknown dtype', tampered((d) => (d.stateDictMetadata['model.w'].properties.dtype = 'complex64')), /properties\.dtype: expected one of float64.*got "complex64"/],
    ['dtype not a string', tampered((d) => (d.stateDictMetadata['model.w'].properties.dtype = 7)), /properties\.dtype: expected one of .* got a number/],
    ['missing properties', tampered((d) => delete d.stateDictMetadata['model.w'].properties), /\["model\.w"\]\.properties: expected an object/],
    ['bad layout', tampered((d) => (d.stateDictMetadata['model.w'].properties.layout = 'sparse_coo')), /properties\.layout: expected "strided"/],
    ['requiresGrad not boolean', tampered((d) => (d.stateDictMetadata['model.w'].properties.requiresGrad = 'yes')), /properties\.requiresGrad: expected a boolean/],
    ['size not an array', tampered((d) => (d.stateDictMetadata['model.w'].size = 8)), /\.size: expected an array of non-negative integers, got a number/],
    ['negative size', tampered((d) => (d.stateDictMetadata['model.w'].size = [-8, 4])), /\.size\[0\]: expected a non-negative integer, got -8/],
    ['fractional size', tampered((d) => (d.stateDictMetadata['model.w'].size = [8, 4.5])), /\.size\[1\]: expected a non-negative integer, got 4\.5/],
    ['string size', tampered((d) => (d.stateDictMetadata['model.w'].size = ['8', 4])), /\.size\[0\]: expected a non-negative integer, got a string/],
    ['unsafe integer size', tampered((d) => (d.stateDictMetadata['model.w'].size = [2 ** 60, 1])), /\.size\[0\]: expected a non-negative integer/],
    ['too many dims', tampered((d) => (d.stateDictMetadata.empty = { ...d.stateDictMetadata.empty, size: new Array(MAX_TENSOR_DIMS + 1).fill(1), chunks: [] })), /\.size: has 65 dims; at most 64/],
    ['absurd numel', tampered((d) => (d.stateDictMetadata['model.w'].size = [2 ** 30, 2 ** 30])), /too large \(more than 2\^53 bytes\)/],
    ['absurd numel via many dims', tampered((d) => (d.stateDictMetadata['model.w'] = { ...d.stateDictMetadata['model.w'], size: new Array(60).fill(4), chunks: [] })), /too large/],
    ['chunks not an array', tampered((d) => (d.stateDictMetadata['model.w'].chunks = {})), /\.chunks: expected an array, got an object/],
    ['chunk null', tampered((d) => (d.stateDictMetadata['model.w'].chunks[1] = null)), /\.chunks\[1\]: expected an object, got null/],
    ['chunk rank mismatch', tampered((d) => (d.stateDictMetadata['model.w'].chunks[0].offsets = [0])), /\.chunks\[0\]\.offsets: has 1 dims but the tensor has 2/],
    ['chunk out of bounds', tampered((d) => (d.stateDictMetadata['model.w'].chunks[1].offsets = [6, 0])), /\.chunks\[1\]: chunk \(offsets \[6, 0\], sizes \[4, 4\]\) lies outside the tensor size \[8, 4\]/],
    ['negative offset', tampered((d) => (d.stateDictMetadata['model.w'].chunks[1].offsets = [-1, 0])), /\.chunks\[1\]\.offsets\[0\]: expected a non-negative integer, got -1/],
    ['extra chunk field', tampered((d) => (d.stateDictMetadata['model.w'].chunks[0].stride = [4, 1])), /\.chunks\[0\]: unexpected field "stride"/],
    ['version not a string', tampered((d) => (d.version = 1)), /version: expected a string, got a number/],
    ['storageMeta not an object', tampered((d) => (d.storageMeta = 'x')), /storageMeta: expected an object/],
    ['storageMeta.modules not strings', tampered((d) => (d.storageMeta.modules = [1])), /storageMeta\.modules\[0\]: expected a string/],
    ['storageMeta extra field', tampered((d) => (d.storageMeta.password = 'x')), /storageMeta: unexpected field "password"/],
  ];
  for (const [name, text, message] of cases) {
    let caught: unknown;
    try {
      metadataFromJSON(text);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof DcpError, `${name}: a DcpError`);
    t.equal((caught as DcpError | undefined)?.code, 'METADATA_INVALID', `${name}: code`);
    t.match((caught as Error | undefined)?.message ?? '', message, `${name}: message`);
  }
});

t.test('size limits', async (t) => {
  const text = metadataToJSON(sample());
  t.throws(() => metadataFromJSON(text, { maxTextLength: 100 }), { code: 'METADATA_INVALID', message: /exceeds the limit of 100/ });
  t.throws(() => metadataFromJSON(tampered((d) => (d.stateDictMetadata['x'.repeat(70_000)] = { type: 'bytes', encoding: 'raw' }))), /an FQN is longer than 65536 characters/);
  t.throws(() => metadataFromJSON(text, { maxTotalChunks: 2 }), /more than 2 chunks in total/);
  t.throws(() => metadataFromJSON(42 as unknown as string), { code: 'METADATA_INVALID', message: /expected a string, got a number/ });
});

t.test('random garbage never escapes as anything but METADATA_INVALID', async (t) => {
  const base = metadataToJSON(sample());
  fc.assert(
    fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 1, max: 8 }), fc.string({ maxLength: 8 }), (at, cut, insert) => {
      const text = base.slice(0, at) + insert + base.slice(at + cut);
      try {
        metadataFromJSON(text);
      } catch (err) {
        if (!(err instanceof DcpError) || err.code !== 'METADATA_INVALID') throw err;
      }
      return true;
    }),
    { numRuns: 2000, seed: 7 },
  );
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      try {
        metadataFromJSON(JSON.stringify({ stateDictMetadata: { x: value } }));
      } catch (err) {
        if (!(err instanceof DcpError) || err.code !== 'METADATA_INVALID') throw err;
      }
      return true;
    }),
    { numRuns: 1000, seed: 11 },
  );
  t.pass('3000 mutated documents handled');
});
