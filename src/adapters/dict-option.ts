// An adapter's dict: the UltraDict it was given, or one it opens from options and then owns (and closes); prefix deletes.

import { UltraDict, type UltraDictOptions } from '../dict.js';

export interface OwnedDict {
  dict: UltraDict<unknown>;
  /** Whether the adapter opened the dict, and so closes it. */
  owned: boolean;
}

export function openDict(dict: UltraDict<unknown> | UltraDictOptions | undefined): OwnedDict {
  if (dict instanceof UltraDict) return { dict, owned: false };
  return { dict: new UltraDict<unknown>(dict ?? {}), owned: true };
}

/** Deletes the string keys that start with prefix, as one atomic batch. */
export function deleteByPrefix(dict: UltraDict<unknown>, prefix: string): void {
  dict.transaction(() => {
    for (const k of dict.keys()) if (typeof k === 'string' && k.startsWith(prefix)) dict.delete(k);
  });
}
