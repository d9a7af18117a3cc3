// Type tests of the public API as published (dist/index.d.ts through the package's exports): compiled by tsc, never run.

import { expectTypeOf } from 'expect-type';
import {
  AlreadyClosedError,
  AlreadyExistsError,
  CorruptSegmentError,
  DEFAULT_BUFFER_SIZE,
  ForeignSegmentError,
  DEFAULT_LOCK_TIMEOUT,
  FullDumpMemoryFullError,
  gc,
  InvalidNameError,
  listDicts,
  LockTimeoutError,
  NotFoundError,
  ParameterMismatchError,
  SerializationError,
  SharedMemoryError,
  TooManyAttachedError,
  UltraDict,
  UltraDictError,
  UnsupportedPlatformError,
  type BuiltinSerializerName,
  type Change,
  type DictInfo,
  type Key,
  type LockHandle,
  type LockOwner,
  type Serializer,
  type SerializerOption,
  type SharedLock,
  type UltraDictOptions,
  type UltraDictStats,
  type UltraDictEvents,
  AbortError,
} from 'ultradict';

declare const d: UltraDict<number>;
declare const any: UltraDict;

// ---- construction ----------------------------------------------------------------------------
expectTypeOf(UltraDict).toBeConstructibleWith();
expectTypeOf(UltraDict).toBeConstructibleWith({ name: 'n', create: false, autoUnlink: false });
expectTypeOf(UltraDict).toBeConstructibleWith({ a: 1 }, { name: 'n' });
expectTypeOf(UltraDict).toBeConstructibleWith(new Map<Key, string>([[1, 'x']]));
expectTypeOf(UltraDict).toBeConstructibleWith([['a', 1] as const], { bufferSize: 4096 });
expectTypeOf(UltraDict).toBeConstructibleWith(null, { serializer: 'json' });
expectTypeOf(new UltraDict<string>({ name: 'n' })).toEqualTypeOf<UltraDict<string>>();
expectTypeOf(new UltraDict()).toEqualTypeOf<UltraDict<unknown>>();
// options are checked in the one- and the two-argument form
// @ts-expect-error: misspelt option
new UltraDict(null, { nam: 'x' });
// @ts-expect-error: unknown serializer name
new UltraDict(null, { serializer: 'yaml' });
// @ts-expect-error: create is a boolean
new UltraDict({}, { create: 'yes' });

expectTypeOf<UltraDictOptions>().toEqualTypeOf<{
  name?: string;
  create?: boolean;
  bufferSize?: number;
  serializer?: SerializerOption;
  fullDumpSize?: number;
  autoUnlink?: boolean;
  lockTimeout?: number;
  mode?: number;
  recurse?: boolean;
  owner?: 'any' | number;
  ttl?: number;
  maxKeys?: number;
  maxBytes?: number;
  evict?: 'lru' | 'fifo';
}>();
expectTypeOf<BuiltinSerializerName>().toEqualTypeOf<'msgpack' | 'json' | 'v8'>();
expectTypeOf<SerializerOption>().toEqualTypeOf<BuiltinSerializerName | Serializer>();
expectTypeOf<Serializer>().toExtend<{ readonly name: string; serialize(v: unknown): Uint8Array; deserialize(b: Uint8Array): unknown }>();
expectTypeOf(DEFAULT_BUFFER_SIZE).toBeNumber();
expectTypeOf(DEFAULT_LOCK_TIMEOUT).toBeNumber();

// ---- the Map API -----------------------------------------------------------------------------
expectTypeOf<Key>().toEqualTypeOf<string | number>();
expectTypeOf(d).toExtend<Map<Key, number>>();
expectTypeOf(d.get).parameters.toEqualTypeOf<[Key]>();
expectTypeOf(d.get('a')).toEqualTypeOf<number | undefined>();
expectTypeOf(d.set('a', 1)).toEqualTypeOf<UltraDict<number>>();
// @ts-expect-error: the value type is checked
d.set('a', 'one');
// @ts-expect-error: keys are strings or numbers
d.get(Symbol('k'));
expectTypeOf(d.has(1)).toBeBoolean();
expectTypeOf(d.delete('a')).toBeBoolean();
expectTypeOf(d.clear()).toBeVoid();
expectTypeOf(d.size).toBeNumber();
expectTypeOf([...d.keys()]).toEqualTypeOf<Key[]>();
expectTypeOf([...d.values()]).toEqualTypeOf<number[]>();
expectTypeOf([...d]).toEqualTypeOf<[Key, number][]>();
expectTypeOf(d.data).toEqualTypeOf<ReadonlyMap<Key, number>>();
expectTypeOf(d.update({ a: 1, b: 2 })).toEqualTypeOf<UltraDict<number>>();
expectTypeOf(d.update([[1, 2]])).toEqualTypeOf<UltraDict<number>>();
expectTypeOf(d.toJSON()).toExtend<Record<string, unknown>>();
expectTypeOf(d.name).toBeString();
expectTypeOf(d.closed).toBeBoolean();

// ---- atomic read-modify-write, lock ------------------------------------------------------------
expectTypeOf(d.withLock(() => 'r' as const)).toEqualTypeOf<'r'>();
expectTypeOf(d.transaction(() => 42)).toEqualTypeOf<number>();
expectTypeOf(d.compute('n', (old) => (old ?? 0) + 1)).toEqualTypeOf<number | undefined>();
expectTypeOf(d.compute).parameter(1).parameter(0).toEqualTypeOf<number | undefined>();
expectTypeOf(d.increment('n')).toBeNumber();
expectTypeOf(d.increment('n', 5)).toBeNumber();
expectTypeOf(d.lock).toEqualTypeOf<SharedLock>();
expectTypeOf(d.lock.acquire({ timeout: 10 })).toEqualTypeOf<LockHandle>();
expectTypeOf<LockHandle>().toExtend<{ release(): void; [Symbol.dispose](): void }>();
expectTypeOf(d.lock.held).toBeBoolean();
expectTypeOf(d.lock.owner()).toEqualTypeOf<LockOwner | null>();
expectTypeOf<LockOwner>().toEqualTypeOf<{ pid: number; tid: number; since: number; offered?: boolean }>();

// ---- changes -----------------------------------------------------------------------------------
expectTypeOf<Change['type']>().toEqualTypeOf<'set' | 'delete' | 'clear' | 'reload' | 'expire' | 'evict'>();

// ---- expiry ------------------------------------------------------------------------------------
expectTypeOf(d.ttl('k')).toEqualTypeOf<number | undefined>();
expectTypeOf(d.expire('k', 1)).toBeBoolean();
expectTypeOf(d.persist('k')).toBeBoolean();
expectTypeOf(d.set).toBeCallableWith('k', 1, { ttl: 1000 });
// @ts-expect-error: ttl is a number of ms
d.set('k', 1, { ttl: '1s' });
expectTypeOf<Change>().toExtend<{ key?: Key; value?: unknown; path?: Key[] }>();
expectTypeOf(d.watch()).toEqualTypeOf<AsyncGenerator<Change, void, undefined>>();
expectTypeOf(d.watch).toBeCallableWith({ signal: AbortSignal.timeout(1) });
expectTypeOf(d.waitForChange({ timeout: 1 })).toEqualTypeOf<Promise<Change | null>>();
expectTypeOf(d.on('change', (c: Change) => void c)).toEqualTypeOf<UltraDict<number>>();
d.on('change', (c) => expectTypeOf(c).toEqualTypeOf<Change>());
d.once('close', () => {});
d.on('error', (e) => expectTypeOf(e).toEqualTypeOf<Error>());
// @ts-expect-error: a misspelled event name is a compile error
d.on('chnage', () => {});
// @ts-expect-error: a 'change' listener receives a Change
d.on('change', (n: number) => void n);
expectTypeOf<keyof UltraDictEvents>().toEqualTypeOf<'change' | 'close' | 'error' | 'newListener' | 'removeListener'>();
expectTypeOf(new AbortError()).toExtend<UltraDictError>();
expectTypeOf(new AbortError().code).toBeString();
expectTypeOf(d.ref()).toEqualTypeOf<UltraDict<number>>();
expectTypeOf(d.unref()).toEqualTypeOf<UltraDict<number>>();

// ---- nested dicts, views ---------------------------------------------------------------------
expectTypeOf(any.nested('users')).toEqualTypeOf<UltraDict<unknown>>();
expectTypeOf(any.path).toEqualTypeOf<Key[]>();
expectTypeOf(any.asObject()).toEqualTypeOf<Record<string, any>>();

// ---- information and lifetime --------------------------------------------------------------------
expectTypeOf(d.stats()).toEqualTypeOf<UltraDictStats>();
expectTypeOf<UltraDictStats>().toExtend<{
  name: string;
  keys: number;
  generation: number;
  streamBytesUsed: number;
  streamBytesSize: number;
  dumps: number;
  serializer: string;
  lockHolder: LockOwner | null;
  attached: number;
  creatorPid: number;
  createdAt: number;
  unlinked: boolean;
  sharedMemoryBytes: number;
}>();
expectTypeOf(d.refresh()).toBeNumber();
expectTypeOf(d.dump()).toBeVoid();
expectTypeOf(d.unlink()).toBeVoid();
expectTypeOf(d.close()).toBeVoid();
expectTypeOf(d[Symbol.dispose]).toBeFunction();
expectTypeOf(UltraDict.unlink('n')).toBeBoolean();
expectTypeOf(UltraDict.exists('n')).toBeBoolean();
expectTypeOf(listDicts()).toEqualTypeOf<DictInfo[]>();
expectTypeOf<DictInfo>().toExtend<{ name: string; attachedPids: number[]; creatorPid: number; sharedMemoryBytes: number }>();
expectTypeOf(gc()).toEqualTypeOf<string[]>();
expectTypeOf(gc).toBeCallableWith({ graceMs: 0 });

// ---- errors ------------------------------------------------------------------------------------
for (const E of [
  AlreadyClosedError,
  AlreadyExistsError,
  NotFoundError,
  ParameterMismatchError,
  FullDumpMemoryFullError,
  SerializationError,
  CorruptSegmentError,
  InvalidNameError,
  TooManyAttachedError,
  UnsupportedPlatformError,
] as const) {
  expectTypeOf(new E('m')).toExtend<UltraDictError>();
}
expectTypeOf(new UltraDictError('m')).toExtend<Error>();
expectTypeOf(new UltraDictError('m').code).toBeString();
expectTypeOf(new LockTimeoutError('m', 1)).toExtend<UltraDictError>();
expectTypeOf(new LockTimeoutError('m', 1).holderPid).toEqualTypeOf<number | null>();
expectTypeOf(new SharedMemoryError('m', 'ENOSPC').osCode).toEqualTypeOf<string | undefined>();
expectTypeOf(new ForeignSegmentError('m', '/ud.x', 1000, 0o666)).toExtend<UltraDictError & { file: string; uid: number; mode: number }>();

// a lone plain object is the options, never initial items
// @ts-expect-error: { a: 1 } is not an option
new UltraDict({ a: 1 });
new UltraDict({ a: 1 }, {});
new UltraDict(new Map([['a', 1]]));
new UltraDict([['a', 1]] as const);

// ultradict/redis: the same Map API over a Redis stream; atomic operations are async
import { Bridge, RedisDict, ReplicationError, TransactionConflictError, type BridgeStats, type RedisDictOptions } from 'ultradict/redis';

declare const rd: RedisDict<number>;
expectTypeOf(RedisDict.open<number>({ name: 'x', redis: 'redis://127.0.0.1:6379' })).toEqualTypeOf<Promise<RedisDict<number>>>();
expectTypeOf(rd.get('k')).toEqualTypeOf<number | undefined>();
expectTypeOf(rd.set('k', 1)).toEqualTypeOf<RedisDict<number>>();
expectTypeOf(rd.increment('k')).toEqualTypeOf<Promise<number>>();
expectTypeOf(rd.compute('k', (v) => (v ?? 0) + 1)).toEqualTypeOf<Promise<number | undefined>>();
expectTypeOf(rd.transaction(() => 'r')).toEqualTypeOf<Promise<string>>();
expectTypeOf(rd.flush()).toEqualTypeOf<Promise<void>>();
expectTypeOf(rd).toExtend<Map<Key, number>>();
expectTypeOf(rd[Symbol.asyncDispose]()).toEqualTypeOf<Promise<void>>();
declare const br: Bridge;
expectTypeOf(br[Symbol.asyncDispose]()).toEqualTypeOf<Promise<void>>();
// @ts-expect-error: a value of the wrong type
rd.set('k', 'no');
// @ts-expect-error: redis is required
const missingRedis: RedisDictOptions = { name: 'x' };
void missingRedis;
expectTypeOf(Bridge.start({ name: 'x', redis: 'redis://h:1' })).toEqualTypeOf<Promise<Bridge>>();
expectTypeOf<BridgeStats['forwarded']>().toBeNumber();
expectTypeOf(new ReplicationError('m')).toExtend<UltraDictError>();
expectTypeOf(new TransactionConflictError('m')).toExtend<UltraDictError>();
