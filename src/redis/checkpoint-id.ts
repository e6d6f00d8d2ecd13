/**
 * Names that become Redis keys (checkpoint ids, key prefixes, process group ids), checked
 * before any key is built. A checkpoint id is a bare namespace ("run1/step-100") or a
 * redis:// / rediss:// URL whose path after the database number carries the namespace
 * ("redis://host:6379/0/run1/step-100"). See docs/format.md, "Checkpoint ids".
 */
import { DcpValueError, InvalidCheckpointIdError } from '../core/errors.js';

export const CHECKPOINT_ID_MAX_LENGTH = 512;
/** The characters an id may use, as a regular-expression class (the API schemas build their patterns from it). */
export const CHECKPOINT_ID_CHARACTERS = '[A-Za-z0-9._\\-/:]';
const ALLOWED = new RegExp(`^${CHECKPOINT_ID_CHARACTERS}+$`);

/** Returns the first rule `id` breaks, or undefined when it is a valid bare namespace. */
export function checkpointIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return 'must be a string';
  if (id.length < 1 || id.length > CHECKPOINT_ID_MAX_LENGTH) return `must be 1-${CHECKPOINT_ID_MAX_LENGTH} characters long`;
  if (!ALLOWED.test(id)) return 'may contain only letters, digits and . _ - / : (no spaces, glob or hash-tag characters)';
  if (id.startsWith('/') || id.endsWith('/')) return 'must not start or end with "/"';
  if (id.includes('//')) return 'must not contain empty path segments ("//")';
  if (id.split('/').some((seg) => seg === '..' || seg === '.')) return 'must not contain "." or ".." path segments';
  if (id.includes('..')) return 'must not contain ".."';
  return undefined;
}

export function isValidCheckpointName(id: unknown): id is string {
  return checkpointIdProblem(id) === undefined;
}

/** Throws InvalidCheckpointIdError naming the broken rule. */
export function assertValidCheckpointName(id: unknown): asserts id is string {
  const problem = checkpointIdProblem(id);
  if (problem !== undefined) throw new InvalidCheckpointIdError(id, problem);
}

export interface ParsedCheckpointId {
  /** The namespace inside Redis. */
  readonly name: string;
  /** Connection URL (without the namespace) when the id was a URL. */
  readonly url?: string;
}

const URL_FORM = /^(rediss?):\/\/([^/]+)\/(\d+)\/(.+)$/;

/** Splits a URL id into connection URL and namespace; validates the namespace. */
export function parseCheckpointId(id: unknown): ParsedCheckpointId {
  if (typeof id === 'string' && /^rediss?:\/\//.test(id)) {
    const m = URL_FORM.exec(id);
    if (!m) throw new InvalidCheckpointIdError(id, 'a redis:// id must look like redis://host:port/<db>/<namespace>');
    const [, scheme, authority, db, name] = m;
    assertValidCheckpointName(name);
    return { name: name!, url: `${scheme}://${authority}/${db}` };
  }
  assertValidCheckpointName(id);
  return { name: id };
}

/** True for ids this backend accepts (bare namespaces and redis:// URLs). */
export function isRedisCheckpointId(id: unknown): boolean {
  try {
    parseCheckpointId(id);
    return true;
  } catch {
    return false;
  }
}

const PREFIX_RULE = /^[A-Za-z0-9._\-:]{1,64}$/;

/** Key prefixes: 1-64 characters of letters, digits and . _ - : */
export function assertValidPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string' || !PREFIX_RULE.test(prefix)) {
    throw new InvalidCheckpointIdError(prefix, 'a key prefix must be 1-64 characters of letters, digits and . _ - :');
  }
}

const GROUP_ID_RULE = /^[A-Za-z0-9._\-:/]{1,200}$/;

/** Process group ids (RedisProcessGroup): 1-200 characters of letters, digits and . _ - : / (no braces: they would break the hash tag). */
export function assertValidGroupId(groupId: unknown): asserts groupId is string {
  if (typeof groupId !== 'string' || !GROUP_ID_RULE.test(groupId)) {
    throw new DcpValueError('INVALID_GROUP_ID', 'groupId must be 1-200 characters of letters, digits and . _ - : /');
  }
}
