/**
 * The one table of error codes: code → HTTP status → CLI exit code → meaning.
 * `DcpError` takes its code from here; the admin API's problem bodies, the CLI's exit
 * codes and docs/errors.md are derived from it. See docs/errors.md.
 */

/** CLI exit codes (the `redis-dcp` command's documented contract). */
export const EXIT_CODES = {
  ok: 0,
  failure: 1,
  usage: 2,
  noRedis: 3,
  notFound: 4,
  locked: 5,
} as const;
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** What each CLI exit code tells a script; `redis-dcp --help` and docs/errors.md print this list. */
export const EXIT_CODE_MEANINGS: Readonly<Record<ExitCode, string>> = {
  [EXIT_CODES.ok]: 'success',
  [EXIT_CODES.failure]: 'validate found problems, or an unexpected error',
  [EXIT_CODES.usage]: 'bad command line or invalid checkpoint id',
  [EXIT_CODES.noRedis]: 'Redis not reachable',
  [EXIT_CODES.notFound]: 'no such checkpoint',
  [EXIT_CODES.locked]: 'the checkpoint is locked by a running save or delete, or in use by a load',
};

export interface ErrorCodeInfo {
  /** HTTP status of an admin API answer carrying this code. */
  readonly status: number;
  /** Exit code of the CLI when a command fails with this code. */
  readonly exit: ExitCode;
  /** One line: what went wrong. */
  readonly meaning: string;
}

const { failure, usage, noRedis, notFound, locked } = EXIT_CODES;

export const ERROR_CODES = {
  // Bad input from the caller: nothing was read or written.
  DCP_VALUE_ERROR: { status: 400, exit: usage, meaning: 'A bad argument or option; the message names it' },
  INVALID_CHECKPOINT_ID: { status: 400, exit: usage, meaning: 'The checkpoint id breaks the naming rules; rejected before Redis is touched' },
  INVALID_CURSOR: { status: 400, exit: usage, meaning: 'A listing cursor this server did not issue' },
  INVALID_LIMIT: { status: 400, exit: usage, meaning: 'A listing limit outside 1–1000' },
  INVALID_PARAMETER: { status: 400, exit: usage, meaning: 'A request parameter failed its schema; the message names the parameter and rule' },
  INVALID_REDIS: { status: 400, exit: usage, meaning: 'The `redis` option is neither an ioredis client nor a redis:// URL' },
  INVALID_GROUP_ID: { status: 400, exit: usage, meaning: 'A process group id breaks the naming rules' },
  NO_STORAGE: { status: 400, exit: usage, meaning: 'No storage writer/reader given and no registered backend recognises the checkpoint id' },
  UNSUPPORTED_VALUE: { status: 400, exit: usage, meaning: 'The state dict holds a value DCP cannot save (not a plain object, circular, too deep)' },
  DUPLICATED_FLATTEN_KEY: { status: 400, exit: usage, meaning: 'Two state dict entries flatten to the same key' },
  INVALID_PATH: { status: 400, exit: usage, meaning: 'An object path into the state dict is malformed or does not fit its containers' },
  USAGE: { status: 400, exit: usage, meaning: 'The command line is malformed (CLI)' },
  CONFIG_INVALID: { status: 400, exit: usage, meaning: 'The server configuration (environment variables or buildApp options) is invalid' },
  INCREMENTAL_UNSUPPORTED: { status: 400, exit: usage, meaning: 'no longer raised (incremental saves work on standalone Redis and Redis Cluster); kept so that clients matching the code keep compiling' },
  BAD_REQUEST: { status: 400, exit: usage, meaning: 'The HTTP request is malformed (bad JSON, content type, …)' },

  // The state dict and the checkpoint disagree (load).
  TYPE_MISMATCH: { status: 400, exit: failure, meaning: 'A state dict value and the checkpoint item are of different kinds (tensor, bytes, JSON)' },
  SIZE_MISMATCH: { status: 400, exit: failure, meaning: 'A tensor in the state dict has another shape than in the checkpoint' },
  DTYPE_MISMATCH: { status: 400, exit: failure, meaning: 'A tensor in the state dict has another dtype than in the checkpoint' },
  MISSING_KEY: { status: 400, exit: failure, meaning: 'A strict load found a state dict key the checkpoint lacks' },
  ITEM_NOT_FOUND: { status: 400, exit: failure, meaning: 'A plan or lookup names an item, shard or chunk that does not exist' },
  ITEM_OUT_OF_BOUNDS: { status: 400, exit: failure, meaning: 'A read item reaches outside its destination tensor' },
  BOX_OUT_OF_BOUNDS: { status: 400, exit: failure, meaning: 'A tensor box (offsets + lengths) exceeds its tensor' },
  WORLD_SIZE_MISMATCH: { status: 400, exit: failure, meaning: 'The ranks of a process group were given different world sizes' },

  // Checkpoint state.
  CHECKPOINT_NOT_FOUND: { status: 404, exit: notFound, meaning: 'No checkpoint has this id' },
  CHECKPOINT_NOT_COMMITTED: { status: 409, exit: failure, meaning: 'The checkpoint exists but is not committed (a save is writing, failed or was deleted half-way); it cannot be loaded' },
  CHECKPOINT_EXISTS: { status: 409, exit: failure, meaning: 'A save without overwrite found a checkpoint with this id' },
  CHECKPOINT_LOCKED: { status: 409, exit: locked, meaning: 'Another save or delete holds the checkpoint lock' },
  CHECKPOINT_IN_USE: { status: 409, exit: locked, meaning: 'A load holds a pin on the checkpoint; it cannot be deleted now' },
  FENCED: { status: 409, exit: locked, meaning: 'This coordinator lost its lock (stale fencing token or expired lease) and must not commit' },
  GROUP_IN_USE: { status: 409, exit: locked, meaning: 'Another live run holds the process group id' },
  INSUFFICIENT_MEMORY: { status: 507, exit: failure, meaning: 'Redis cannot hold the bytes the save would write (maxmemory − used_memory); nothing was written' },

  // Stored data that is damaged or tampered with.
  METADATA_INVALID: { status: 422, exit: failure, meaning: 'Stored metadata or storage data is malformed or over its size limit' },
  STORED_DATA_INVALID: { status: 422, exit: failure, meaning: 'A key of the checkpoint holds the wrong Redis type (tampered with outside redis-dcp)' },
  CHECKSUM_MISMATCH: { status: 422, exit: failure, meaning: 'Bytes do not match their checksum (a segment part: XXH64 or CRC32C; a piece: its BLAKE3 id)' },
  DATA_MISSING: { status: 422, exit: failure, meaning: 'A data key the metadata names is gone or has the wrong length' },
  CORRUPT_ITEM: { status: 422, exit: failure, meaning: 'A stored JSON item is not valid UTF-8 JSON' },

  // Redis and the lock quorum.
  REDIS_UNAVAILABLE: { status: 503, exit: noRedis, meaning: 'Redis is not reachable (refused, closed, timed out, loading, cluster down)' },
  LOCK_UNAVAILABLE: { status: 503, exit: noRedis, meaning: 'No quorum of Redlock nodes could be reached; nothing was written' },
  REDIS_ERROR: { status: 502, exit: failure, meaning: 'Redis answered a command with an error or a reply the protocol does not allow' },

  // Distributed protocol.
  CHECKPOINT_FAILED: { status: 500, exit: failure, meaning: 'A save or load failed on one or more ranks; `failures` maps each rank to its error' },
  COLLECTIVE_TIMEOUT: { status: 504, exit: failure, meaning: 'A collective did not complete in time (a rank died or is stuck)' },
  COLLECTIVE_MISMATCH: { status: 500, exit: failure, meaning: 'Ranks called different collectives at the same step' },
  COLLECTIVE_ABANDONED: { status: 500, exit: failure, meaning: 'A collective was abandoned because the group is closing' },
  PAYLOAD_EXPIRED: { status: 500, exit: failure, meaning: "A collective's payload expired in Redis before a rank read it" },
  GROUP_CLOSED: { status: 500, exit: failure, meaning: 'The process group is closed' },
  PLAN_INVALID: { status: 500, exit: failure, meaning: 'A save plan failed validation (an item planned twice, missing tensor data, overlapping chunks)' },
  PLANNER_NOT_SET_UP: { status: 500, exit: failure, meaning: 'A planner method ran before setUpPlanner' },
  PREVIOUS_SAVE_FAILED: { status: 500, exit: failure, meaning: 'An earlier async save through this writer or group failed and nobody saw it; `cause` holds its failure' },
  ASYNC_WORKER_FAILED: { status: 500, exit: failure, meaning: 'The background upload thread died before reporting; the checkpoint is committed only if the catalog says so (normally incomplete)' },
  REMOTE_ERROR: { status: 500, exit: failure, meaning: 'A rank failed with an error that carries no code of this table; `remoteCode` keeps its own' },

  // Admin API only.
  UNAUTHORIZED: { status: 401, exit: failure, meaning: 'The route needs `Authorization: Bearer <token>`' },
  FORBIDDEN: { status: 403, exit: failure, meaning: 'The bearer token is wrong' },
  ROUTE_NOT_FOUND: { status: 404, exit: failure, meaning: 'No such route (ids containing "/" must be percent-encoded as %2F)' },
  REQUEST_TIMEOUT: { status: 408, exit: failure, meaning: 'The request took too long to arrive' },
  MALFORMED_REQUEST: { status: 400, exit: failure, meaning: 'The request is not valid HTTP' },
  PAYLOAD_TOO_LARGE: { status: 413, exit: failure, meaning: 'The request body is over the size limit' },
  URL_TOO_LONG: { status: 414, exit: failure, meaning: 'The request URL is over the size limit' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exit: failure, meaning: 'The request body has a content type no route accepts' },
  TOO_MANY_AUTH_FAILURES: { status: 429, exit: failure, meaning: 'Too many failed authentications from this address; retry later' },
  HEADERS_TOO_LARGE: { status: 431, exit: failure, meaning: 'The request headers are over the size limit' },
  SERVICE_UNAVAILABLE: { status: 503, exit: noRedis, meaning: 'The server is shutting down or overloaded' },
  INTERNAL_ERROR: { status: 500, exit: failure, meaning: 'An unexpected error; the server log or stack trace has the details' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

export function errorCodeInfo(code: ErrorCode): ErrorCodeInfo {
  return ERROR_CODES[code];
}
