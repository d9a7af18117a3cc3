// Entry point of ultradict/keyv: a Keyv storage adapter on an UltraDict, shared by every process of the machine (needs keyv).

import { EventEmitter } from 'node:events';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import type { UltraDict, UltraDictOptions } from '../dict.js';
import { requirePeer } from '../adapters/peer.js';
import { deleteByPrefix, openDict } from '../adapters/dict-option.js';
import { setWithTtl } from '../adapters/expiry.js';

requirePeer('ultradict/keyv', 'keyv');

export { MissingPeerError } from '../adapters/peer.js';

/**
 * A Keyv store on an UltraDict: `new Keyv({ store: new KeyvUltraDict({ name: 'cache' }) })`. Keys are
 * Keyv's prefixed keys (`namespace:key`); a TTL becomes the key's expiry in the dict (where ultradict has
 * expiry; Keyv also checks the deadline it stores with the value); clear() removes this namespace only.
 */
export class KeyvUltraDict extends EventEmitter implements KeyvStoreAdapter {
  /** Keyv reads `opts.dialect` and `opts.url` to tell what kind of store this is. */
  opts: { dialect: 'ultradict'; url: string };
  namespace?: string | undefined;
  readonly dict: UltraDict<unknown>;
  readonly #owned: boolean;

  /** Takes an open dict (which it leaves open on disconnect) or the options of one to create or attach. */
  constructor(dict?: UltraDict<unknown> | UltraDictOptions) {
    super();
    const d = openDict(dict);
    this.dict = d.dict;
    this.#owned = d.owned;
    this.opts = { dialect: 'ultradict', url: `ultradict://${this.dict.name}` };
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    return this.dict.get(key) as StoredData<Value> | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    return keys.map((k) => this.dict.get(k) as StoredData<Value | undefined>);
  }

  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    setWithTtl(this.dict, key, value, ttl);
    return true;
  }

  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    this.dict.transaction(() => {
      for (const e of entries) setWithTtl(this.dict, e.key, e.value, e.ttl);
    });
  }

  async delete(key: string): Promise<boolean> {
    return this.dict.delete(key);
  }

  /** True if every key existed (Keyv's rule for deleteMany). */
  async deleteMany(keys: string[]): Promise<boolean> {
    return this.dict.transaction(() => keys.map((k) => this.dict.delete(k)).every(Boolean));
  }

  async has(key: string): Promise<boolean> {
    return this.dict.has(key);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return keys.map((k) => this.dict.has(k));
  }

  /** Removes the keys of this namespace (all keys when there is none), as one atomic batch. */
  async clear(): Promise<void> {
    if (this.namespace === undefined) {
      this.dict.clear();
      return;
    }
    deleteByPrefix(this.dict, `${this.namespace}:`);
  }

  /** [key, raw value] of the keys of `namespace` (of all keys without one), from a snapshot. */
  async *iterator<Value>(namespace?: string): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    const prefix = namespace === undefined ? '' : `${namespace}:`;
    for (const [k, v] of this.dict.entries()) {
      if (typeof k === 'string' && k.startsWith(prefix)) yield [k, v as Awaited<Value>];
    }
  }

  /** Closes the dict if this adapter opened it. */
  async disconnect(): Promise<void> {
    if (this.#owned && !this.dict.closed) this.dict.close();
  }
}

export default KeyvUltraDict;
