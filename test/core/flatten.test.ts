/**
 * Flattening, after DCP's test_traverse.py and test_nested_dict.py (2.4+ rules:
 * dicts are always walked, lists only when they hold tensors or walked containers).
 */
import t from 'tap';
import {
  assertFlatStateDict,
  flattenStateDict,
  getElement,
  setElement,
  traverseStateDict,
  unflattenStateDict,
} from '../../src/core/flatten.js';
import { DcpValueError } from '../../src/core/errors.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';

const tensor = (...values: number[]): Tensor => new Tensor('float32', [values.length], Float32Array.from(values));

function collect(sd: StateDict): Map<string, unknown> {
  const data = new Map<string, unknown>();
  traverseStateDict(sd, (path, value) => data.set(JSON.stringify(path), value));
  return data;
}

t.test('traverse shallow: scalars, plain lists and tensors are leaves; dicts are walked', async (t) => {
  const key3 = tensor(1);
  const data = collect({ key0: 1, key1: [1, 2], key2: { 1: 2, 2: 3 }, key3 });
  t.same([...data.keys()], ['["key0"]', '["key1"]', '["key2","1"]', '["key2","2"]', '["key3"]']);
  t.equal(data.get('["key0"]'), 1);
  t.same(data.get('["key1"]'), [1, 2]);
  t.equal(data.get('["key2","1"]'), 2);
  t.equal(data.get('["key3"]'), key3);
});

t.test('traverse nested list: lists holding tensors are expanded, plain ones are not', async (t) => {
  const a = tensor(1);
  const b = tensor(2);
  const data = collect({ key1: [a, [33, b, [44, 55]], [66, 77]] });
  t.notOk(data.has('["key1"]'));
  t.equal(data.get('["key1",0]'), a);
  t.equal(data.get('["key1",1,0]'), 33);
  t.equal(data.get('["key1",1,1]'), b);
  t.same(data.get('["key1",1,2]'), [44, 55]);
  t.notOk(data.has('["key1",1,2,0]'));
  t.same(data.get('["key1",2]'), [66, 77]);
});

t.test('traverse nested dict and intermediate collections', async (t) => {
  const x = tensor(1);
  const data = collect({ key0: { key1: 99, key2: x } });
  t.notOk(data.has('["key0"]'));
  t.equal(data.get('["key0","key1"]'), 99);
  t.equal(data.get('["key0","key2"]'), x);
  const deep = collect({ key0: [{ key1: { key2: x } }] });
  t.equal(deep.get('["key0",0,"key1","key2"]'), x);
  t.equal(deep.size, 1);
});

t.test('dicts without tensors are walked too; a list holding a dict is expanded', async (t) => {
  const { flat, mappings } = flattenStateDict({ opt: { lr: 0.1, betas: [0.9, 0.99] }, k3: ['x', 99, [{ k3: 'y' }]] });
  t.same(flat, { 'opt.lr': 0.1, 'opt.betas': [0.9, 0.99], 'k3.0': 'x', 'k3.1': 99, 'k3.2.0.k3': 'y' });
  t.same(mappings['k3.2.0.k3'], ['k3', 2, 0, 'k3']);
  t.same(mappings['opt.betas'], ['opt', 'betas']);
});

t.test('mapping (test_nested_dict.test_mapping)', async (t) => {
  const { flat, mappings } = flattenStateDict({ k0: [1], k2: [tensor(1), 99, [{ k3: tensor(1) }]] });
  t.same(Object.keys(flat), ['k0', 'k2.0', 'k2.1', 'k2.2.0.k3']);
  t.same(mappings.k0, ['k0']);
  t.same(mappings['k2.0'], ['k2', 0]);
  t.same(mappings['k2.1'], ['k2', 1]);
  t.same(mappings['k2.2.0.k3'], ['k2', 2, 0, 'k3']);
  t.type(mappings['k2.0']![1], 'number', 'list indexes stay numbers');
});

t.test('flatten/unflatten round trip with lists of tensors and lists of plain values', async (t) => {
  const sd: StateDict = {
    key0: 1,
    key1: [1, 2],
    key2: { 1: 2, 2: 3 },
    key3: tensor(1),
    key4: [[tensor(2), 'x'], [1, 2, 3], { key6: [44] }],
    bytes: new Uint8Array([1, 2, 3]),
    nested: { sharded: new ShardedTensor([4], 'float32', [{ offsets: [0], tensor: tensor(1, 2) }]), flag: true, none: null },
  };
  const { flat, mappings } = flattenStateDict(sd);
  t.same(Object.keys(flat), ['key0', 'key1', 'key2.1', 'key2.2', 'key3', 'key4.0.0', 'key4.0.1', 'key4.1', 'key4.2.key6', 'bytes', 'nested.sharded', 'nested.flag', 'nested.none']);
  t.equal(flat['key4.0.0'], (sd.key4 as unknown[][])[0]![0], 'leaves are the caller objects, not copies');
  const restored = unflattenStateDict(flat, mappings);
  t.same(restored, sd);
  t.equal((restored.key4 as unknown[][])[0]![0], flat['key4.0.0']);
});

t.test('empty dicts vanish; empty lists are leaves', async (t) => {
  const { flat } = flattenStateDict({ a: {}, b: { c: {} }, d: [], e: [{}], f: [1, {}] });
  t.same(flat, { d: [], 'f.0': 1 });
});

t.test('duplicated flatten key', async (t) => {
  t.throws(() => flattenStateDict({ 'a.b': 1, a: { b: 2 } }), { name: 'DcpValueError', code: 'DUPLICATED_FLATTEN_KEY', message: 'duplicated flatten key a.b' });
  t.throws(() => flattenStateDict({ 'x.0': tensor(1), x: [tensor(2)] }), /duplicated flatten key x\.0/);
});

t.test('a list of bytes is expanded (bytes have no JSON form)', async (t) => {
  const a = new Uint8Array([1]);
  const { flat } = flattenStateDict({ blobs: [a, new Uint8Array([2])] });
  t.same(Object.keys(flat), ['blobs.0', 'blobs.1']);
  t.equal(flat['blobs.0'], a);
});

t.test('unsupported values are a DcpValueError naming the FQN', async (t) => {
  class Custom {
    x = 1;
  }
  const cases: Array<[string, unknown, RegExp]> = [
    ['function', () => 1, /"m\.f".*a function/],
    ['undefined', undefined, /"m\.f".*undefined/],
    ['Map', new Map(), /"m\.f".*a Map/],
    ['Date', new Date(0), /"m\.f".*a Date/],
    ['class instance', new Custom(), /"m\.f".*a Custom/],
    ['NaN', Number.NaN, /"m\.f".*NaN/],
    ['Infinity', Number.POSITIVE_INFINITY, /"m\.f".*Infinity/],
    ['BigInt', 10n, /"m\.f".*BigInt/],
    ['Float32Array', new Float32Array(2), /"m\.f".*Float32Array/],
    ['symbol', Symbol('s'), /"m\.f".*symbol/],
    ['nested inside a JSON leaf', [1, [2, undefined]], /"m\.f".*undefined/],
    ['NaN inside a JSON list', [1, Number.NaN], /"m\.f".*NaN/],
    ['array hole', [1, , 3], /"m\.f".*hole/], // eslint-disable-line no-sparse-arrays
  ];
  for (const [name, value, message] of cases) {
    t.throws(() => flattenStateDict({ m: { f: value } } as unknown as StateDict), { name: 'DcpValueError', code: 'UNSUPPORTED_VALUE', message }, name);
  }
  t.throws(() => flattenStateDict(new Map() as unknown as StateDict), DcpValueError, 'state dict itself must be a plain object');
});

t.test('cycles are reported, not a stack overflow', async (t) => {
  const a: Record<string, unknown> = { x: 1 };
  a.self = a;
  t.throws(() => flattenStateDict({ a } as StateDict), /circular reference/);
  const list: unknown[] = [1];
  list.push(list);
  t.throws(() => flattenStateDict({ list } as unknown as StateDict), /circular reference/);
  const shared = { v: 1 };
  t.doesNotThrow(() => flattenStateDict({ a: shared, b: shared } as StateDict), 'a shared (non-cyclic) object is fine');
});

t.test('without flattening, top-level values must be leaves', async (t) => {
  t.doesNotThrow(() => assertFlatStateDict({ a: { nested: [1, 2] }, b: tensor(1) }));
  t.throws(() => assertFlatStateDict({ a: { w: tensor(1) } }), /"a".*a Tensor/);
});

t.test('set_element (test_traverse.test_set_element)', async (t) => {
  const sd: StateDict = {};
  setElement(sd, ['k'], 10);
  t.equal(sd.k, 10);
  setElement(sd, ['k1', 2], 1);
  t.same(sd.k1, [null, null, 1]);
  setElement(sd, ['k1', 1], 99);
  t.same(sd.k1, [null, 99, 1]);
  setElement(sd, ['k1', 3], 88);
  t.same(sd.k1, [null, 99, 1, 88]);
  setElement(sd, ['k2', 'k3'], 3);
  t.same(sd.k2, { k3: 3 });
  setElement(sd, ['k2', 'k4', 0, 0], 99);
  t.same((sd.k2 as Record<string, unknown[]>).k4![0], [99]);
});

t.test('set_element never touches prototypes and rejects bad paths', async (t) => {
  const sd: StateDict = {};
  setElement(sd, ['__proto__', 'polluted'], 1);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.same(Object.keys(sd), ['__proto__']);
  setElement(sd, ['constructor', 'x'], 2);
  t.equal(typeof Object.prototype.constructor, 'function');
  t.throws(() => setElement(sd, [], 1), /must not be empty/);
  t.throws(() => setElement(sd, ['a', -1], 1), /Invalid object path/);
  t.throws(() => setElement(sd, ['a', 1.5], 1), /Invalid object path/);
  setElement(sd, ['leaf'], 5);
  t.throws(() => setElement(sd, ['leaf', 'x'], 1), /not a container/);
});

t.test('get_element (test_traverse.test_get_element)', async (t) => {
  const sd: StateDict = { a: [0, 1], b: [2, { c: 'd' }] };
  t.same(getElement(sd, ['a']), [0, 1]);
  t.equal(getElement(sd, ['b', 0]), 2);
  t.equal(getElement(sd, ['b', 1, 'c']), 'd');
  t.equal(getElement(sd, ['c']), undefined);
  t.equal(getElement(sd, ['a', 33]), undefined);
  t.equal(getElement(sd, ['b', 88]), undefined);
  t.equal(getElement(sd, ['b', 0, 2]), undefined);
  t.equal(getElement(sd, ['b', 1, 2]), undefined);
  t.equal(getElement(sd, ['b', 1, 'd']), undefined);
  t.equal(getElement(sd, ['toString']), undefined, 'inherited properties are not found');
});
