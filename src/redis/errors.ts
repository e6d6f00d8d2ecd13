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
