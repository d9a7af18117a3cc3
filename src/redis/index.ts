// Entry point of ultradict/redis: the Redis-backed dict and the bridge (needs the ioredis package).

export { RedisDict } from './redis-dict.js';
export type { RedisDictOptions, RedisDictStats } from './redis-dict.js';
export { Bridge } from './bridge.js';
export type { BridgeOptions, BridgeStats } from './bridge.js';
export type { RedisTarget } from './protocol.js';
export type { ReplicaStats } from './replica.js';
export { ReplicationError, TransactionConflictError, ParameterMismatchError, NotSupportedError, UltraDictError } from '../errors.js';
