// What a CLI command runs with: exit codes, the command context, and attaching to a dict as a visitor.

import type { UltraDict as UltraDictClass } from '../index.js';
import { lockTimeout, owner, type Parsed } from './args.js';

/** Exit codes a script can rely on (also in `ultradict --help` and docs/api.md). */
export const EXIT = { ok: 0, error: 1, usage: 2, notFound: 3 } as const;

/** The library, loaded by main() only once the command line is valid. */
export type Lib = typeof import('../index.js');

export class KeyNotFound extends Error {
  readonly code = 'ULTRADICT_KEY_NOT_FOUND';
}

export interface Ctx {
  lib: Lib;
  args: string[];
  p: Parsed;
  json: boolean;
  /** prints a line; a promise when the output is full (wait for it before writing more) */
  out: (s: string) => void | Promise<void>;
  err: (s: string) => void;
  signal: AbortSignal;
}

export function open(ctx: Ctx, name: string): UltraDictClass<unknown> {
  const lt = lockTimeout(ctx.p);
  const own = owner(ctx.p);
  // attach only, and never unlink on close: the CLI is a visitor
  return new ctx.lib.UltraDict<unknown>({
    name,
    create: false,
    autoUnlink: false,
    ...(lt === undefined ? {} : { lockTimeout: lt }),
    ...(own === undefined ? {} : { owner: own }),
  });
}

export function withDict<R>(ctx: Ctx, name: string, fn: (d: UltraDictClass<unknown>) => R): R {
  const d = open(ctx, name);
  try {
    return fn(d);
  } finally {
    d.close();
  }
}
