/**
 * Lua scripts of src/redis/commands, registered on a client with ioredis defineCommand
 * (EVALSHA with automatic fallback). File names say `<name>-<numberOfKeys>.lua`; a
 * name without a count takes a variable number of keys. `--@include x` inlines `x.lua`.
 */
import { readFileSync } from 'node:fs';
import type { RedisClient } from './connection.js';

export type ScriptName =
  | 'begin-save'
  | 'extend-lease'
  | 'record-keys'
  | 'commit'
  | 'abort-save'
  | 'forget-save'
  | 'begin-delete'
  | 'begin-collect'
  | 'finish-delete'
  | 'retire-segments'
  | 'refresh-claim'
  | 'release-claim'
  | 'read-shared'
  | 'pin'
  | 'claim-pieces'
  | 'release-pieces'
  | 'sweep-pieces'
  | 'claim-tagged-pieces'
  | 'release-tagged-pieces'
  | 'list-page';

const FILES: Record<ScriptName, string> = {
  'begin-save': 'begin-save-2.lua',
  'extend-lease': 'extend-lease-1.lua',
  'record-keys': 'record-keys-2.lua',
  commit: 'commit-4.lua',
  'abort-save': 'abort-save-1.lua',
  'forget-save': 'forget-save-3.lua',
  'begin-delete': 'begin-delete-3.lua',
  'begin-collect': 'begin-collect-3.lua',
  'finish-delete': 'finish-delete.lua',
  'retire-segments': 'retire-segments.lua',
  'refresh-claim': 'refresh-claim-1.lua',
  'release-claim': 'release-claim-1.lua',
  'read-shared': 'read-shared-1.lua',
  pin: 'pin-2.lua',
  'claim-pieces': 'claim-pieces.lua',
  'release-pieces': 'release-pieces.lua',
  'sweep-pieces': 'sweep-pieces.lua',
  'list-page': 'list-page-1.lua',
  'claim-tagged-pieces': 'claim-tagged-pieces.lua',
  'release-tagged-pieces': 'release-tagged-pieces.lua',
};

function loadLua(file: string): string {
  const text = readFileSync(new URL(`./commands/${file}`, import.meta.url), 'utf8');
  return text.replace(/^--@include (\w+)$/gm, (_, name: string) => loadLua(`${name}.lua`));
}

interface ScriptDef {
  readonly command: string;
  readonly lua: string;
  readonly numberOfKeys: number | undefined;
}

let defs: Map<ScriptName, ScriptDef> | undefined;

function definitions(): Map<ScriptName, ScriptDef> {
  defs ??= new Map(
    (Object.entries(FILES) as Array<[ScriptName, string]>).map(([name, file]) => {
      const count = /-(\d+)\.lua$/.exec(file)?.[1];
      return [name, { command: `dcp_${name.replace(/-/g, '_')}`, lua: loadLua(file), numberOfKeys: count === undefined ? undefined : Number(count) }];
    }),
  );
  return defs;
}

const registered = new WeakSet<RedisClient>();

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

/** Runs a script; replies are arrays of strings whose first element is a status word. */
export async function runScript(client: RedisClient, name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<string[]> {
  return ((await runScriptReply(client, name, keys, args)) as unknown[]).map((v) => String(v));
}

/** Runs a script and returns its reply as ioredis gives it (for scripts that return nested arrays). */
export async function runScriptReply(client: RedisClient, name: ScriptName, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  const all = definitions();
  if (!registered.has(client)) {
    for (const def of all.values()) client.defineCommand(def.command, { lua: def.lua, ...(def.numberOfKeys === undefined ? {} : { numberOfKeys: def.numberOfKeys }) });
    registered.add(client);
  }
  const def = all.get(name)!;
  const fn = (client as unknown as Record<string, ScriptFn>)[def.command]!.bind(client);
  return def.numberOfKeys === undefined ? fn(keys.length, ...keys, ...args) : fn(...keys, ...args);
}
