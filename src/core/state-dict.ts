import type { ShardedTensor, Tensor } from './tensor.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A leaf of a state dict. */
export type StateDictValue = Tensor | ShardedTensor | Uint8Array | JsonValue | StateDict | StateDictValue[];

/** A (possibly nested) state dict: plain objects whose leaves are tensors, bytes or JSON. */
export interface StateDict {
  [key: string]: StateDictValue;
}
