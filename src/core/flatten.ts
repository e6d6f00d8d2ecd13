/**
 * Flattening of nested state dicts to dotted FQNs with DCP's rules (_traverse.py,
 * _nested_dict.py) and their one deliberate difference (lists of bytes): docs/format.md,
 * "Flattening".
 */
import { DcpValueError } from './errors.js';
import type { FlattenMappings, ObjectPath } from './metadata.js';
import type { JsonValue, StateDict } from './state-dict.js';
import { ShardedTensor, Tensor } from './tensor.js';

/** A value stored as one checkpoint item. */
export type StateDictLeaf = Tensor | ShardedTensor | Uint8Array | JsonValue;

export interface FlattenResult {
  /** FQN → leaf, in traversal order (the order write/read items are created in). */
  readonly flat: Record<string, StateDictLeaf>;
  /** FQN → path in the original nested dict; goes to planner data. */
  readonly mappings: FlattenMappings;
}

/** Nesting deeper than this is treated as a mistake (or a cycle we failed to see). */
const MAX_DEPTH = 512;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Values that must become their own item (never folded into a JSON leaf). */
function isItemValue(value: unknown): value is Tensor | ShardedTensor | Uint8Array {
  return value instanceof Tensor || value instanceof ShardedTensor || value instanceof Uint8Array;
}

/** Assigns an own property, even for keys like "__proto__" (no prototype changes). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** `Object.hasOwn` for any object (a state dict may have a null prototype or an own `hasOwnProperty` key). */
export function hasOwn(target: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, key);
}

export function fqnOfPath(path: ObjectPath): string {
  return path.map(String).join('.');
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'number') return `the number ${String(value)}`;
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'object') {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return name ? `a ${name}` : 'an object';
  }
  return typeof value;
}

function unsupported(fqn: string, value: unknown, where = ''): DcpValueError {
  return new DcpValueError('UNSUPPORTED_VALUE', `Unsupported state dict value at "${fqn}"${where}: ${describe(value)}. ` +
      'Values must be Tensor, ShardedTensor, Uint8Array, JSON values (null, boolean, finite number, string, arrays and plain objects of those) or nested plain objects.');
}

/**
 * Throws unless `value` is a JSON value that survives JSON.stringify/parse unchanged
 * (no undefined, no non-finite numbers, no holes, plain objects only, no cycles).
 */
export function assertJsonValue(fqn: string, value: unknown): asserts value is JsonValue {
  const ancestors = new Set<object>();
  const check = (v: unknown, where: string, depth: number): void => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw unsupported(fqn, v, where);
      return;
    }
    if (depth > MAX_DEPTH) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict value at "${fqn}" is nested more than ${MAX_DEPTH} levels deep`);
    if (Array.isArray(v)) {
      if (ancestors.has(v)) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict value at "${fqn}" contains a circular reference${where}`);
      ancestors.add(v);
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) throw unsupported(fqn, undefined, `${where}[${i}] (array hole)`);
        check(v[i], `${where}[${i}]`, depth + 1);
      }
      ancestors.delete(v);
      return;
    }
    if (isPlainObject(v)) {
      if (ancestors.has(v)) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict value at "${fqn}" contains a circular reference${where}`);
      ancestors.add(v);
      for (const key of Object.keys(v)) check(v[key], `${where}.${key}`, depth + 1);
      ancestors.delete(v);
      return;
    }
    throw unsupported(fqn, v, where === '' ? '' : ` (at ${where.replace(/^\./, '')})`);
  };
  check(value, '', 0);
}

/** Throws unless `value` can be stored as one item. */
export function assertLeafValue(fqn: string, value: unknown): asserts value is StateDictLeaf {
  if (value instanceof Tensor || value instanceof ShardedTensor) return;
  if (value instanceof Uint8Array) return;
  assertJsonValue(fqn, value);
}

/**
 * DCP's `_is_terminal`: an array is terminal (one leaf) unless it holds something
 * that needs its own item or a container that is walked. `seen` guards against cycles.
 */
function isTerminalArray(value: readonly unknown[], seen: Set<object>, fqn: string): boolean {
  if (seen.has(value)) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict value at "${fqn}" contains a circular reference`);
  seen.add(value);
  try {
    for (const entry of value) {
      if (isItemValue(entry) || isPlainObject(entry)) return false;
      if (Array.isArray(entry) && !isTerminalArray(entry, seen, fqn)) return false;
    }
    return true;
  } finally {
    seen.delete(value);
  }
}

/**
 * Calls `visit(path, value)` for every leaf of `stateDict`, in key order, with DCP's
 * rules for what is a leaf. Leaves are not validated here (see flattenStateDict).
 */
export function traverseStateDict(stateDict: StateDict, visit: (path: ObjectPath, value: unknown) => void): void {
  const ancestors = new Set<object>();
  const walk = (path: (string | number)[], value: unknown): void => {
    if (path.length > MAX_DEPTH) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict is nested more than ${MAX_DEPTH} levels deep at "${fqnOfPath(path)}"`);
    if (isPlainObject(value)) {
      if (ancestors.has(value)) throw new DcpValueError('UNSUPPORTED_VALUE', `State dict contains a circular reference at "${fqnOfPath(path)}"`);
      ancestors.add(value);
      for (const key of Object.keys(value)) walk([...path, key], value[key]);
      ancestors.delete(value);
    } else if (Array.isArray(value) && !isTerminalArray(value, ancestors, fqnOfPath(path))) {
      ancestors.add(value);
      for (let i = 0; i < value.length; i++) walk([...path, i], value[i]);
      ancestors.delete(value);
    } else {
      visit(path, value);
    }
  };
  if (!isPlainObject(stateDict)) throw new DcpValueError('UNSUPPORTED_VALUE', `A state dict must be a plain object, got ${describe(stateDict)}`);
  for (const key of Object.keys(stateDict)) walk([key], stateDict[key]);
}

/**
 * Flattens a nested state dict into `{ fqn: leaf }` plus the mappings that undo it,
 * validating every leaf. Leaves are the caller's objects (nothing is copied).
 */
export function flattenStateDict(stateDict: StateDict): FlattenResult {
  const flat: Record<string, StateDictLeaf> = {};
  const mappings: FlattenMappings = {};
  traverseStateDict(stateDict, (path, value) => {
    const fqn = fqnOfPath(path);
    if (hasOwn(flat, fqn)) throw new DcpValueError('DUPLICATED_FLATTEN_KEY', `duplicated flatten key ${fqn}`);
    assertLeafValue(fqn, value);
    setOwn(flat, fqn, value);
    setOwn(mappings, fqn, path);
  });
  return { flat, mappings };
}

/**
 * Checks a state dict that is used without flattening: every top-level value must
 * itself be a leaf (nested objects are then JSON values and must hold no tensors).
 */
export function assertFlatStateDict(stateDict: StateDict): asserts stateDict is Record<string, StateDictLeaf> {
  if (!isPlainObject(stateDict)) throw new DcpValueError('UNSUPPORTED_VALUE', `A state dict must be a plain object, got ${describe(stateDict)}`);
  for (const key of Object.keys(stateDict)) assertLeafValue(key, stateDict[key]);
}

type Container = Record<string, unknown> | unknown[];

function extendList(list: unknown[], index: number): void {
  while (list.length <= index) list.push(null);
}

function checkPathElement(element: unknown, path: ObjectPath): asserts element is string | number {
  if (typeof element === 'string') return;
  if (typeof element === 'number' && Number.isSafeInteger(element) && element >= 0 && element <= 0xffffffff) return;
  throw new DcpValueError('INVALID_PATH', `Invalid object path [${path.map((p) => JSON.stringify(p)).join(', ')}]: elements must be strings or array indexes`);
}

/**
 * DCP's `set_element`: stores `value` at `path` inside `root`, creating the objects
 * (for string keys) and arrays (for numeric keys) on the way, and padding arrays
 * with null. Works on own properties only, so a path can never reach a prototype.
 */
export function setElement(root: StateDict, path: ObjectPath, value: unknown): void {
  if (path.length === 0) throw new DcpValueError('INVALID_PATH', 'Invalid object path []: it must not be empty');
  path.forEach((p) => checkPathElement(p, path));
  let container: Container = root;
  for (let i = 1; i < path.length; i++) {
    const prevKey = path[i - 1]!;
    const makeDefault = (): Container => (typeof path[i] === 'string' ? {} : []);
    let next: unknown;
    if (Array.isArray(container)) {
      if (typeof prevKey !== 'number') throw new DcpValueError('INVALID_PATH', `Invalid object path: "${prevKey}" indexes an array at "${fqnOfPath(path.slice(0, i))}"`);
      extendList(container, prevKey);
      if (container[prevKey] === null || container[prevKey] === undefined) container[prevKey] = makeDefault();
      next = container[prevKey];
    } else {
      const key = String(prevKey);
      if (!hasOwn(container, key)) setOwn(container, key, makeDefault());
      next = container[key];
    }
    if (!Array.isArray(next) && !isPlainObject(next)) {
      throw new DcpValueError('INVALID_PATH', `Cannot set "${fqnOfPath(path)}": "${fqnOfPath(path.slice(0, i))}" is ${describe(next)}, not a container`);
    }
    container = next;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(container)) {
    if (typeof last !== 'number') throw new DcpValueError('INVALID_PATH', `Invalid object path: "${last}" indexes an array in "${fqnOfPath(path)}"`);
    extendList(container, last);
    container[last] = value;
  } else {
    setOwn(container, String(last), value);
  }
}

/** DCP's `get_element`: the value at `path`, or `undefined` when any step is missing. */
export function getElement(root: StateDict, path: ObjectPath): unknown {
  let current: unknown = root;
  for (const part of path) {
    if (typeof part === 'number') {
      if (!Array.isArray(current) || part >= current.length) return undefined;
      current = current[part];
    } else {
      if (!isPlainObject(current) || !hasOwn(current, part)) return undefined;
      current = current[part];
    }
  }
  return current;
}

/** Rebuilds the nested dict from a flat one and its mappings (DCP's unflatten_state_dict). */
export function unflattenStateDict(flat: Record<string, unknown>, mappings: FlattenMappings): StateDict {
  const nested: StateDict = {};
  for (const fqn of Object.keys(flat)) {
    const path = hasOwn(mappings, fqn) ? mappings[fqn] : undefined;
    if (path === undefined) throw new DcpValueError('INVALID_PATH', `No mapping for flattened key "${fqn}"`);
    setElement(nested, path, flat[fqn]);
  }
  return nested;
}
