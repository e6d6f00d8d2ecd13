/** Errors of the Redis backend; `code`s are stable (the admin API maps them to HTTP statuses). */
import { DcpError } from '../core/errors.js';

export class CheckpointNotFoundError extends DcpError {
  constructor(id: string) {
    super('CHECKPOINT_NOT_FOUND', `Checkpoint "${id}" does not exist`);
  }
}

export class CheckpointNotCommittedError extends DcpError {
  constructor(id: string, state: string) {
    super('CHECKPOINT_NOT_COMMITTED', `Checkpoint "${id}" is not committed (state: ${state}); only committed checkpoints can be loaded`);
  }
}

export class CheckpointExistsError extends DcpError {
  constructor(id: string) {
    super('CHECKPOINT_EXISTS', `Checkpoint already exists: "${id}" (pass overwrite: true to replace it)`);
  }
}

/** Another save or delete holds the checkpoint's lock. */
export class CheckpointLockedError extends DcpError {
  constructor(id: string, waitedMs: number) {
    super('CHECKPOINT_LOCKED', `Checkpoint "${id}" is locked by another save or delete${waitedMs > 0 ? ` (waited ${waitedMs} ms)` : ''}`);
  }
}

/** No Redlock quorum could be reached: nothing is written without the lock. */
export class LockUnavailableError extends DcpError {
  constructor(id: string, detail: string) {
    super('LOCK_UNAVAILABLE', `Cannot lock checkpoint "${id}": no quorum of lock nodes (${detail})`);
  }
}

/** This coordinator's fencing token is stale or its lease expired: a newer owner exists. */
export class FencedError extends DcpError {
  constructor(id: string, detail: string) {
    super('FENCED', `Checkpoint "${id}": ${detail}; this coordinator lost its lock and must not commit`);
  }
}

/** A load holds a pin on the checkpoint (docs/format.md, "Load pins"): it cannot be deleted now. */
export class CheckpointInUseError extends DcpError {
  constructor(id: string) {
    super('CHECKPOINT_IN_USE', `Checkpoint "${id}" is being loaded (a reader holds a pin on it); it cannot be deleted now`);
  }
}

/** The save cannot fit in Redis (maxmemory − used_memory); nothing was written. */
export class InsufficientMemoryError extends DcpError {
  constructor(
    id: string,
    readonly neededBytes: number,
    readonly availableBytes: number,
    detail: string,
  ) {
    super('INSUFFICIENT_MEMORY', `Save of "${id}" needs ${neededBytes} bytes but Redis can take ${availableBytes} more (${detail}); nothing was written`);
  }
}

export class ChecksumMismatchError extends DcpError {
  readonly fqn: string;
  readonly key: string;
  constructor(fqn: string, key: string, detail: string) {
    super('CHECKSUM_MISMATCH', `Corrupt data for "${fqn}" in key ${key}: ${detail}`);
    this.fqn = fqn;
    this.key = key;
  }
}

/** A data key the metadata names is gone or has the wrong length. */
export class MissingDataError extends DcpError {
  readonly fqn: string;
  readonly key: string;
  constructor(fqn: string, key: string, detail: string) {
    super('DATA_MISSING', `Missing data for "${fqn}" in key ${key}: ${detail}`);
    this.fqn = fqn;
    this.key = key;
  }
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGE = /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|Reached the max retries|^LOADING|^MASTERDOWN|^CLUSTERDOWN|^TRYAGAIN/;

/**
 * The one place that reads ioredis' errors: a DcpError stays as it is; "no server"
 * (retries exhausted, closed connection, socket errors, loading, cluster down) becomes
 * REDIS_UNAVAILABLE, WRONGTYPE STORED_DATA_INVALID, another Redis error reply REDIS_ERROR,
 * each with the original as `cause`. Anything else is returned unchanged.
 */
export function fromRedisError(err: unknown): unknown {
  if (err instanceof DcpError || !(err instanceof Error)) return err;
  const code = (err as Error & { code?: unknown }).code;
  if (err.name === 'MaxRetriesPerRequestError' || UNAVAILABLE_MESSAGE.test(err.message) || (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code))) {
    return new DcpError('REDIS_UNAVAILABLE', `Redis is not reachable: ${err.message}`, { cause: err });
  }
  if (err.name === 'ReplyError' && err.message.startsWith('WRONGTYPE')) {
    return new DcpError('STORED_DATA_INVALID', `A key of this checkpoint holds the wrong Redis type (tampered with outside redis-dcp): ${err.message}`, { cause: err });
  }
  if (err.name === 'ReplyError') return new DcpError('REDIS_ERROR', err.message, { cause: err });
  return err;
}

/** The DcpError of an error reply (`-ERR …`, `-WRONGTYPE …`, `-OOM …`) read off a raw connection. */
export function replyError(message: string): DcpError {
  if (message.startsWith('LOADING') || message.startsWith('MASTERDOWN') || message.startsWith('CLUSTERDOWN') || message.startsWith('TRYAGAIN')) {
    return new DcpError('REDIS_UNAVAILABLE', `Redis is not reachable: ${message}`);
  }
  if (message.startsWith('WRONGTYPE')) return new DcpError('STORED_DATA_INVALID', `A key of this checkpoint holds the wrong Redis type (tampered with outside redis-dcp): ${message}`);
  return new DcpError('REDIS_ERROR', message);
}

/** Runs `fn`, turning a Redis client error into its DcpError (see fromRedisError). */
export async function translatingRedisErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromRedisError(err);
  }
}
