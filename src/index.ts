// Public entry point of ultradict: the UltraDict class, its option and stats types, errors and serializers.

export { UltraDict, DEFAULT_BUFFER_SIZE, DEFAULT_LOCK_TIMEOUT } from './dict.js';
export type { UltraDictOptions, UltraDictStats, UltraDictEvents, Key, LockHandle, LockOwner, Change } from './dict.js';
export type { SharedLock } from './lock.js';
export type { Serializer, SerializerOption, BuiltinSerializerName } from './serializer.js';
export type { OwnerOption } from './trust.js';
export { listDicts, gc } from './registry.js';
export type { DictInfo } from './registry.js';
export * from './errors.js';
