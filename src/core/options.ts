/**
 * Option validation, the same everywhere: an option that is given must be valid, or the
 * constructor throws a DcpValueError naming it (never a silent clamp); an absent one
 * takes its default.
 */
import { DcpValueError } from './errors.js';

/** An integer in [min, max], or `fallback` when `value` is undefined (a required option passes `fallback` undefined). */
export function intOption(name: string, value: number | undefined, fallback: number | undefined, { min = 1, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {}): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (value === undefined || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : `an integer from ${min} to ${max}`;
    throw new DcpValueError('DCP_VALUE_ERROR', `${name} must be ${range}, got ${String(value)}`);
  }
  return value;
}

/** A finite number > 0, or `fallback` when `value` is undefined. */
export function positiveNumberOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new DcpValueError('DCP_VALUE_ERROR', `${name} must be a positive number, got ${String(value)}`);
  return value;
}

/** One of `allowed` (compared with ===), or `fallback` when `value` is undefined. */
export function choiceOption<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly unknown[]).includes(value)) return value as T;
  throw new DcpValueError('DCP_VALUE_ERROR', `${name} must be ${allowed.map((a) => `'${a}'`).join(' or ')} (got ${JSON.stringify(value)})`);
}
