/**
 * Typed errors. Every error the library throws on purpose is a DcpError with a
 * stable `code`, so callers can branch on `err.code` instead of parsing messages.
 */
export class DcpError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad arguments or an unsupported state dict value (DCP raises ValueError). */
export class DcpValueError extends DcpError {
  constructor(message: string, code = 'DCP_VALUE_ERROR') {
    super(code, message);
  }
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
 * An error raised on another rank, rebuilt from its wire form. Keeps the original
 * class name and code so `failures.get(rank).code` works across processes.
 */
export class RemoteRankError extends DcpError {
  readonly remoteName: string;
  readonly remoteStack: string | undefined;
  constructor(remoteName: string, code: string, message: string, remoteStack?: string) {
    super(code, message);
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
  }
}

/**
 * A save or load failed on one or more ranks. Raised on every rank with the same
 * failures, like DCP's CheckpointException.
 */
export class CheckpointError extends DcpError {
  readonly step: string;
  readonly failures: Map<number, Error>;
  constructor(step: string, failures: Map<number, Error>) {
    const parts = [...failures.entries()]
      .sort(([a], [b]) => a - b)
      .map(([rank, err]) => `rank ${rank}: ${err.name}: ${err.message}`);
    super('CHECKPOINT_FAILED', `Checkpoint failed at step "${step}": ${parts.join('; ')}`);
    this.step = step;
    this.failures = failures;
  }
}

/** A collective did not complete in time (a rank died or is stuck). */
export class CollectiveTimeoutError extends DcpError {
  constructor(message: string) {
    super('COLLECTIVE_TIMEOUT', message);
  }
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
    const maybeCode = (err as Error & { code?: unknown }).code;
    const code = typeof maybeCode === 'string' ? maybeCode : 'ERROR';
    const name = err instanceof RemoteRankError ? err.remoteName : err.name;
    return { __dcpError: true, name, code, message: err.message, stack: err.stack };
  }
  return { __dcpError: true, name: 'Error', code: 'ERROR', message: String(err) };
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as { __dcpError?: unknown }).__dcpError === true;
}

export function errorFromWire(wire: WireError): Error {
  return new RemoteRankError(wire.name, wire.code, wire.message, wire.stack);
}
