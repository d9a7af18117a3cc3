// Public entry point of ultradict: the UltraDict class, its option and stats types, errors and serializers.

export { UltraDict, DEFAULT_BUFFER_SIZE, DEFAULT_LOCK_TIMEOUT } from './dict.js';
export type { UltraDictOptions, UltraDictStats, EvictPolicy, WriteOptions, UltraDictEvents, Key, LockHandle, LockOwner, Change } from './dict.js';
export type { SharedLock } from './engine/lock.js';
export type { Serializer, SerializerOption, BuiltinSerializerName } from './codec/serializer.js';
export type { OwnerOption } from './shm/trust.js';
export { listDicts, gc } from './shm/discovery.js';
export type { DictInfo } from './shm/discovery.js';
export * from './errors.js';
