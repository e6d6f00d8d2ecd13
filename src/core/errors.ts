/**
 * Typed errors. Every error the library throws on purpose is a DcpError whose `code`
 * comes from the one table in error-codes.ts (docs/errors.md), so callers branch on
 * `err.code`; a wrapped error is kept as `cause`.
 */
import { ERROR_CODES, isErrorCode, type ErrorCode, type ErrorCodeInfo } from './error-codes.js';

export interface DcpErrorOptions {
  /** The error this one wraps (a Redis client error, a failure on another rank, …). */
  readonly cause?: unknown;
}

/** The base of every library error: `new DcpError(code, message, { cause })`. */
export class DcpError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: DcpErrorOptions) {
    // A code outside the table is a bug in the caller (plain JavaScript can pass any string).
    if (!isErrorCode(code)) throw new TypeError(`DcpError: ${JSON.stringify(code)} is not a code of the error table (src/core/error-codes.ts)`);
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }

  /** HTTP status, CLI exit code and meaning of this error's code. */
  get info(): ErrorCodeInfo {
    return ERROR_CODES[this.code];
  }
}

/** Bad arguments or an unsupported state dict value (DCP raises ValueError). Same signature as DcpError. */
export class DcpValueError extends DcpError {
  constructor(code: ErrorCode, message: string, options?: DcpErrorOptions) {
    super(code, message, options);
  }
}

/** The error for a bad option value: a DcpValueError (DCP_VALUE_ERROR) naming the option and its rule. */
export function invalidOption(name: string, rule: string, value: unknown): DcpValueError {
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value) : String(value);
  return new DcpValueError('DCP_VALUE_ERROR', `${name} must be ${rule}, got ${shown}`);
}

/** A checkpoint id that breaks the naming rules; raised before any storage is touched. */
export class InvalidCheckpointIdError extends DcpError {
  readonly rule: string;
  constructor(id: unknown, rule: string) {
    const shown = typeof id === 'string' ? JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id) : typeof id;
    super('INVALID_CHECKPOINT_ID', `Invalid checkpoint id ${shown}: ${rule}`);
    this.rule = rule;
  }
}

/**
 * An error raised on another rank, rebuilt from its wire form. `code` is the remote
 * error's code when the table has it (else REMOTE_ERROR); `remoteCode` and
 * `remoteName` keep what the other rank raised, whatever it was.
 */
export class RemoteRankError extends DcpError {
  readonly remoteName: string;
  readonly remoteCode: string;
  readonly remoteStack: string | undefined;
  constructor(remoteName: string, remoteCode: string, message: string, remoteStack?: string) {
    super(isErrorCode(remoteCode) ? remoteCode : 'REMOTE_ERROR', message);
    this.remoteName = remoteName;
    this.remoteCode = remoteCode;
    this.remoteStack = remoteStack;
  }
}

/**
 * A save or load failed on one or more ranks. Raised on every rank with the same
 * failures, like DCP's CheckpointException; `cause` is the lowest rank's failure.
 */
export class CheckpointError extends DcpError {
  readonly step: string;
  readonly failures: Map<number, Error>;
  constructor(step: string, failures: Map<number, Error>) {
    const sorted = [...failures.entries()].sort(([a], [b]) => a - b);
    const parts = sorted.map(([rank, err]) => `rank ${rank}: ${err.name}: ${err.message}`);
    super('CHECKPOINT_FAILED', `Checkpoint failed at step "${step}": ${parts.join('; ')}`, { cause: sorted[0]?.[1] });
    this.step = step;
    this.failures = failures;
  }
}

/** "Failed to validate global plan" (PLAN_INVALID), with what failed for which FQN. */
export class GlobalPlanValidationError extends DcpValueError {
  readonly problems: ReadonlyArray<{ readonly fqn: string; readonly kind: string; readonly message: string }>;
  constructor(problems: ReadonlyArray<{ readonly fqn: string; readonly kind: string; readonly message: string }>) {
    const shown = problems.slice(0, 10).map((p) => p.message);
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
    super('PLAN_INVALID', `Failed to validate global plan: ${shown.join('; ')}${more}`);
    this.problems = problems;
  }
}

/** A collective did not complete in time (a rank died or is stuck). */
export class CollectiveTimeoutError extends DcpError {
  constructor(message: string) {
    super('COLLECTIVE_TIMEOUT', message);
  }
}

/** The code an error carries across ranks: a rebuilt remote error's original, any error's own string `code`. */
export function codeOfError(err: unknown): string | undefined {
  if (err instanceof RemoteRankError) return err.remoteCode;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Plain-JSON form of an error, for sending failures between ranks. */
export interface WireError {
  readonly __dcpError: true;
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly stack?: string;
}

export function errorToWire(err: unknown): WireError {
  if (err instanceof Error) {
    const name = err instanceof RemoteRankError ? err.remoteName : err.name;
    return { __dcpError: true, name, code: codeOfError(err) ?? 'ERROR', message: err.message, stack: err.stack };
  }
  return { __dcpError: true, name: 'Error', code: 'ERROR', message: String(err) };
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as { __dcpError?: unknown }).__dcpError === true;
}

export function errorFromWire(wire: WireError): Error {
  return new RemoteRankError(wire.name, wire.code, wire.message, wire.stack);
}
