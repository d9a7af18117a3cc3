// An adapter's dict: the UltraDict it was given, or one it opens from options and then owns (and closes).

import { UltraDict, type UltraDictOptions } from '../index.js';

export interface OwnedDict {
  dict: UltraDict<unknown>;
  /** Whether the adapter opened the dict, and so closes it. */
  owned: boolean;
}

export function openDict(dict: UltraDict<unknown> | UltraDictOptions | undefined): OwnedDict {
  if (dict instanceof UltraDict) return { dict, owned: false };
  return { dict: new UltraDict<unknown>(dict ?? {}), owned: true };
}
