// The Redis side of replication: key names, the Lua scripts that write entries and snapshots
// atomically, stream-id order, entry parsing and the connection helper. See docs/FORMAT.md ("Redis").

import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { ReplicationError } from '../errors.js';

/** Version of the layout below, recorded in the meta hash; a different one is refused. */
export const REDIS_FORMAT = '2';
export const DEFAULT_PREFIX = 'ultradict:';

/** The keys of one replicated dict. The {name} hash tag keeps them in one Redis Cluster slot. */
export interface Keys {
  meta: string;
  stream: string;
  last: string;
  snap: string;
  snapLock: string;
  /** how many entries were ever appended (snapshots are spaced by it) */
  count: string;
  /** bridges that ever ran on this stream: origin -> first start (a restart is told from a first start by it) */
  bridges: string;
  /** per-key versions: keyField(key) -> id of the last entry that wrote that root key; '*' -> a floor for every key */
  ver: string;
  origin(origin: string): string;
  /** a bridge's applied position: an entry id such that every entry up to it is in its local dict */
  applied(origin: string): string;
}

export function keysOf(prefix: string, name: string): Keys {
  const base = `${prefix}{${name}}`;
  return {
    meta: `${base}:meta`,
    stream: `${base}:stream`,
    last: `${base}:last`,
    snap: `${base}:snap`,
    snapLock: `${base}:snaplock`,
    count: `${base}:count`,
    bridges: `${base}:bridges`,
    ver: `${base}:ver`,
    origin: (o) => `${base}:origin:${o}`,
    applied: (o) => `${base}:applied:${o}`,
  };
}

const CMP = `
local function cmpid(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  if am ~= bm then if am < bm then return -1 else return 1 end end
  if as ~= bs then if as < bs then return -1 else return 1 end end
  return 0
end
local function seqle(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
-- per-key versions (KEYS[5], a hash): field -> id of the last entry that wrote the root key; '*' -> an id
-- that every key's version is at most (the last root clear, the trim point, the upgrade from format 1).
-- A key spec in ARGV is a count then that many fields; count -1 means a root clear (every key).
local function bump(ver, id, args, i)
  local n = tonumber(args[i])
  if n < 0 then
    redis.call('DEL', ver)
    redis.call('HSET', ver, '*', id)
    return i + 1
  end
  for j = 1, n do redis.call('HSET', ver, args[i + j], id) end
  return i + 1 + n
end
-- the same for many entries: collects field -> id (the latest wins) and writes them with one HSET at
-- the end (flushvers); a clear empties what was collected before it
local pendvers = {}
local npend = 0
local function collect(ver, id, args, i)
  local n = tonumber(args[i])
  if n < 0 then
    redis.call('DEL', ver)
    redis.call('HSET', ver, '*', id)
    pendvers = {}
    npend = 0
    return i + 1
  end
  for j = 1, n do
    if pendvers[args[i + j]] == nil then npend = npend + 1 end
    pendvers[args[i + j]] = id
  end
  return i + 1 + n
end
local function flushvers(ver)
  if npend == 0 then return end
  local flat = {}
  for f, id in pairs(pendvers) do
    flat[#flat + 1] = f
    flat[#flat + 1] = id
    if #flat >= 4000 then
      redis.call('HSET', ver, unpack(flat))
      flat = {}
    end
  end
  if #flat > 0 then redis.call('HSET', ver, unpack(flat)) end
end
-- true if no entry after 'expected' wrote any of the n fields args[i+1 .. i+n]
local function unchanged(ver, expected, args, i, n)
  local star = redis.call('HGET', ver, '*')
  if star and cmpid(star, expected) > 0 then return false end
  for j = 1, n do
    local v = redis.call('HGET', ver, args[i + j])
    if v and cmpid(v, expected) > 0 then return false end
  end
  return true
end
`;

/**
 * Checks the types of the dict's keys (a foreign key is refused, not overwritten) and records the
 * format and serializer on first use. A dict of format 1 (no per-key versions) is upgraded: every key's
 * version is taken as the last entry (writers of format 1 must be stopped first; they refuse format 2).
 * KEYS: meta stream last snap count bridges ver; ARGV: format serializer. Returns {status, format, serializer}.
 */
export const INIT_LUA = `
local want = {'hash', 'stream', 'string', 'hash', 'string', 'hash', 'hash'}
for i = 1, 7 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want[i] then return {'foreign', KEYS[i], t} end
end
if redis.call('HGET', KEYS[1], 'format') == '1' and ARGV[1] == '2' then
  redis.call('HSET', KEYS[7], '*', redis.call('GET', KEYS[3]) or '0-0')
  redis.call('HSET', KEYS[1], 'format', '2')
end
redis.call('HSETNX', KEYS[1], 'format', ARGV[1])
redis.call('HSETNX', KEYS[1], 'serializer', ARGV[2])
return {'ok', redis.call('HGET', KEYS[1], 'format'), redis.call('HGET', KEYS[1], 'serializer')}
`;

/**
 * Appends one entry only if no entry after ARGV[3] (the id the transaction read at) wrote a key it read
 * (optimistic transactions). Fields: p (the id of the entry before it: a reader that applied p may apply
 * this one, anything else is a gap), o (origin), s (the origin's sequence number) and d (the operation,
 * encoded as a frame body of the shared-memory stream). A sequence number the origin already wrote is
 * skipped: a command resent after a reconnect lands once. KEYS: stream last origin count ver; ARGV:
 * origin seq expected body ttl, then the keys read (a key spec; count -1: it read everything, so the
 * stream's last id must still be ARGV[3]), then the keys written (a key spec).
 * Returns {status ('ok', 'dup' or 'conflict'), id-or-last, length, prev}.
 */
export const WRITE_LUA = `${CMP}
local last = redis.call('GET', KEYS[2]) or '0-0'
local seen = redis.call('GET', KEYS[3])
if seen and seqle(ARGV[2], seen) then return {'dup', last, 0, last} end
local nread = tonumber(ARGV[6])
if nread < 0 then
  if ARGV[3] ~= last then return {'conflict', last, 0, last} end
  nread = 0
elseif not unchanged(KEYS[5], ARGV[3], ARGV, 6, nread) then
  return {'conflict', last, 0, last}
end
local id = redis.call('XADD', KEYS[1], '*', 'p', last, 'o', ARGV[1], 's', ARGV[2], 'd', ARGV[4])
bump(KEYS[5], id, ARGV, 7 + nread)
redis.call('SET', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[5])
redis.call('INCR', KEYS[4])
return {'ok', id, redis.call('XLEN', KEYS[1]), last}
`;

/**
 * Appends several entries of one origin in order (the writes one process made in one tick), with
 * the fields, the skipping and the version bumps of WRITE_LUA, without a condition. KEYS: stream last
 * origin count ver; ARGV: origin ttl n, then n times: seq body keyspec (the root keys it writes).
 * Returns {entries written, last id, length}.
 */
export const WRITE_MANY_LUA = `${CMP}
local last = redis.call('GET', KEYS[2]) or '0-0'
local seen = redis.call('GET', KEYS[3])
local n = tonumber(ARGV[3])
local wrote = 0
local i = 4
for e = 1, n do
  local seq = ARGV[i]
  if not (seen and seqle(seq, seen)) then
    last = redis.call('XADD', KEYS[1], '*', 'p', last, 'o', ARGV[1], 's', seq, 'd', ARGV[i + 1])
    i = collect(KEYS[5], last, ARGV, i + 2)
    seen = seq
    wrote = wrote + 1
  else
    local nk = tonumber(ARGV[i + 2])
    if nk < 0 then nk = 0 end
    i = i + 3 + nk
  end
end
flushvers(KEYS[5])
if wrote > 0 then
  redis.call('SET', KEYS[2], last)
  redis.call('SET', KEYS[3], seen, 'EX', ARGV[2])
  redis.call('INCRBY', KEYS[4], wrote)
end
return {wrote, last, redis.call('XLEN', KEYS[1])}
`;

/** Whether a snapshot is due: ARGV[1] entries appended since the current one. KEYS: snap count. */
export const SNAPSHOT_DUE_LUA = `
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local at = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n - at >= tonumber(ARGV[1]) then return 1 end
return 0
`;

/**
 * Publishes a snapshot taken at entry ARGV[1], only if it is newer than the current one and due (as
 * SNAPSHOT_DUE_LUA, ARGV[3]), then trims the stream to the snapshot before the current one: each
 * generation holds at least ARGV[3] entries and readers keep two of them to catch up with. Versions at
 * or before the trim point are folded into the '*' floor (keeps the hash to the keys written lately).
 * KEYS: snap stream count ver; ARGV: id dump generation. Returns 1 if published.
 */
export const SNAPSHOT_LUA = `${CMP}
local cur = redis.call('HGET', KEYS[1], 'id')
if cur and cmpid(cur, ARGV[1]) >= 0 then return 0 end
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n - tonumber(redis.call('HGET', KEYS[1], 'n') or '0') < tonumber(ARGV[3]) then return 0 end
local prev = redis.call('HGET', KEYS[1], 'prev')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'd', ARGV[2], 'prev', cur or '0-0', 'n', n)
if prev then
  redis.call('XTRIM', KEYS[2], 'MINID', prev)
  local all = redis.call('HGETALL', KEYS[4])
  local old = {}
  for i = 1, #all, 2 do
    if all[i] ~= '*' and cmpid(all[i + 1], prev) <= 0 then old[#old + 1] = all[i] end
  end
  for i = 1, #old, 1000 do redis.call('HDEL', KEYS[4], unpack(old, i, math.min(i + 999, #old))) end
  local star = redis.call('HGET', KEYS[4], '*')
  if #old > 0 and (not star or cmpid(star, prev) < 0) then redis.call('HSET', KEYS[4], '*', prev) end
end
return 1
`;

/** The field of a root key in the versions hash: strings and numbers never collide, nor with '*'. */
export function keyField(k: string | number): string {
  return typeof k === 'number' ? `n${k}` : `s${k}`;
}

/** A key spec for the scripts: the count then the fields; null (a root clear, or "read everything"): -1. */
export function keySpec(keys: Iterable<string | number> | null, out: (string | number | Buffer)[]): void {
  if (keys === null) {
    out.push(-1);
    return;
  }
  const at = out.length;
  out.push(0);
  let n = 0;
  for (const k of keys) {
    out.push(keyField(k));
    n++;
  }
  out[at] = n;
}

/** Order of two stream ids ("ms-seq"): negative, 0 or positive. */
export function cmpId(a: string, b: string): number {
  if (a === b) return 0;
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  return am !== bm ? (am < bm ? -1 : 1) : as < bs ? -1 : as > bs ? 1 : 0;
}

function splitId(id: string): [bigint, bigint] {
  const dash = id.indexOf('-');
  if (dash <= 0 || !/^\d+-\d+$/.test(id)) throw new ReplicationError(`invalid stream id ${JSON.stringify(id)}`);
  return [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
}

/** One stream entry, checked for shape (the body is checked when decoded); `bad` says why it is not ours. */
export interface Entry {
  id: string;
  prev: string;
  origin: string;
  seq: bigint;
  body: Buffer;
  bad?: string;
}

/**
 * Parses XREAD/XRANGE entries ([id, [field, value, ...]], as Buffers). An entry that is not an
 * ultradict entry (added to the stream by something else) is returned with `bad` set.
 */
export function parseEntries(raw: unknown): Entry[] {
  if (!Array.isArray(raw)) throw new ReplicationError('unexpected reply from Redis (not an array of entries)');
  const out: Entry[] = [];
  for (const e of raw) {
    if (!Array.isArray(e) || e.length !== 2 || !Array.isArray(e[1])) throw new ReplicationError('unexpected reply from Redis (malformed stream entry)');
    const id = String(e[0]);
    const f = e[1] as Buffer[];
    let prev: string | undefined, origin: string | undefined, seq: string | undefined, body: Buffer | undefined;
    for (let i = 0; i + 1 < f.length; i += 2) {
      const name = String(f[i]);
      if (name === 'p') prev = String(f[i + 1]);
      else if (name === 'o') origin = String(f[i + 1]);
      else if (name === 's') seq = String(f[i + 1]);
      else if (name === 'd') body = Buffer.isBuffer(f[i + 1]) ? f[i + 1] : Buffer.from(String(f[i + 1]));
    }
    if (prev === undefined || origin === undefined || seq === undefined || body === undefined || !/^\d{1,30}$/.test(seq) || !/^\d+-\d+$/.test(prev)) {
      out.push({ id, prev: '', origin: '', seq: 0n, body: Buffer.alloc(0), bad: 'not an ultradict entry (fields p, o, s, d)' });
    } else out.push({ id, prev, origin, seq: BigInt(seq), body });
  }
  return out;
}

/** Where to connect: a redis:// URL or ioredis options. */
export type RedisTarget = string | RedisOptions;

/** Describes a target for messages and logs: the password, if any, is replaced by '***'. */
export function describeTarget(t: RedisTarget): string {
  if (typeof t === 'string') {
    try {
      const u = new URL(t);
      if (u.password !== '') u.password = '***';
      return u.toString();
    } catch {
      // not a URL: keep what is before any '@' out of it
      return t.includes('@') ? `${t.slice(0, t.indexOf('://') + 3)}***@${t.slice(t.lastIndexOf('@') + 1)}` : t;
    }
  }
  return `redis://${t.host ?? '127.0.0.1'}:${t.port ?? 6379}${t.db ? `/${t.db}` : ''}`;
}

/** The database a target asks for (the URL's path, or options.db); NaN if the URL's path is not a number. */
export function dbOf(t: RedisTarget): number {
  if (typeof t !== 'string') return t.db ?? 0;
  try {
    const path = new URL(t).pathname.replace(/^\//, '');
    return path === '' ? 0 : /^\d+$/.test(path) ? Number(path) : NaN;
  } catch {
    return 0;
  }
}

/** An error Redis gives for bad credentials: retrying cannot help. */
export function isAuthError(e: unknown): boolean {
  return /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username-password|AUTH.*(failed|without any password)/i.test((e as Error)?.message ?? '');
}

type RedisCtor = new (a: string | RedisOptions, b?: RedisOptions) => RedisClient;
let ctor: RedisCtor | null = null;

/** Loads ioredis (an optional peer dependency) on first use, with a clear error when it is missing. */
async function loadIoredis(): Promise<RedisCtor> {
  if (ctor !== null) return ctor;
  try {
    const m = (await import('ioredis')) as unknown as { Redis?: RedisCtor; default?: RedisCtor };
    ctor = (m.Redis ?? m.default)!;
    return ctor;
  } catch (e) {
    throw new ReplicationError('ultradict/redis needs the ioredis package: npm install ioredis', { cause: e });
  }
}

/**
 * Opens a connection that waits through reconnects (commands are queued and resent in order, never
 * failed for being offline) and defines the scripts. Rejects with ReplicationError if no connection is
 * ready within connectTimeout ms.
 */
export async function connect(target: RedisTarget, role: string, connectTimeout: number): Promise<RedisClient> {
  const db = dbOf(target);
  if (!Number.isSafeInteger(db) || db < 0) throw new ReplicationError(`${describeTarget(target)}: the database must be a number (redis://host:port/DB)`);
  const Redis = await loadIoredis();
  const opts: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: null,
    // no auto-pipelining: ioredis aborts (rather than resends) commands of a partly answered pipeline
    // when the connection drops; plain commands are resent in order on reconnect, which, with the
    // per-origin sequence numbers, lands every write exactly once. Writes of one tick are batched in
    // one script call anyway.
    enableAutoPipelining: false,
    connectTimeout,
    retryStrategy: (times) => Math.min(20 * times, 500),
    connectionName: `ultradict-${role}`,
  };
  const client = typeof target === 'string' ? new Redis(target, opts) : new Redis({ ...target, ...opts });
  let lastError: unknown = null;
  const onError = (e: unknown): void => {
    lastError = e;
  };
  client.on('error', onError);
  client.defineCommand('udInit', { numberOfKeys: 7, lua: INIT_LUA });
  client.defineCommand('udWrite', { numberOfKeys: 5, lua: WRITE_LUA });
  client.defineCommand('udWriteMany', { numberOfKeys: 5, lua: WRITE_MANY_LUA });
  client.defineCommand('udSnapshotDue', { numberOfKeys: 2, lua: SNAPSHOT_DUE_LUA });
  client.defineCommand('udSnapshot', { numberOfKeys: 4, lua: SNAPSHOT_LUA });
  let timer: NodeJS.Timeout | undefined;
  let authFailed: ((e: unknown) => void) | null = null;
  const onAuth = (e: unknown): void => {
    if (isAuthError(e)) authFailed?.(e);
  };
  client.on('error', onAuth);
  try {
    // ioredis retries by itself (retryStrategy): wait for the first 'ready' or give up after connectTimeout;
    // bad credentials are final (no retry can fix them): reported at once
    await new Promise<void>((resolve, reject) => {
      authFailed = reject;
      client.once('ready', resolve);
      timer = setTimeout(() => reject(new Error(`no connection within ${connectTimeout} ms`)), connectTimeout);
      client.connect().catch(onAuth);
    });
  } catch (e) {
    client.disconnect();
    if (isAuthError(e)) throw new ReplicationError(`${describeTarget(target)} refused the credentials: ${(e as Error).message}`, { cause: e });
    const why = (lastError as Error | null)?.message ?? (e as Error)?.message ?? String(e);
    throw new ReplicationError(`cannot connect to ${describeTarget(target)} within ${connectTimeout} ms: ${why}`, { cause: lastError ?? e });
  } finally {
    clearTimeout(timer);
    client.off('error', onAuth);
  }
  if (db !== 0) {
    // ioredis selects the database on connect, but goes on in database 0 if that fails: check it
    try {
      await client.select(db);
    } catch (e) {
      client.disconnect();
      throw new ReplicationError(`${describeTarget(target)}: Redis has no database ${db} (${(e as Error).message}; see its 'databases' setting)`, { cause: e });
    }
  }
  return client; // onError stays: an 'error' event without a listener would be printed by ioredis
}

/** The scripts defined by connect(), as typed calls. */
export interface Scripts {
  udInit(meta: string, stream: string, last: string, snap: string, count: string, bridges: string, ver: string, format: string, serializer: string): Promise<string[]>;
  udWrite(
    stream: string,
    last: string,
    origin: string,
    count: string,
    ver: string,
    o: string,
    seq: string,
    expected: string,
    body: Buffer,
    ttl: number,
    ...readsThenWrites: (string | number)[]
  ): Promise<[string, string, number, string]>;
  udWriteMany(stream: string, last: string, origin: string, count: string, ver: string, o: string, ttl: number, n: number, ...entries: (string | number | Buffer)[]): Promise<[number, string, number]>;
  udSnapshotDue(snap: string, count: string, generation: number): Promise<number>;
  udSnapshot(snap: string, stream: string, count: string, ver: string, id: string, dump: Buffer, generation: number): Promise<number>;
}

export function scripts(c: RedisClient): Scripts {
  return c as unknown as Scripts;
}
