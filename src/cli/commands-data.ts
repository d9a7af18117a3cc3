// The CLI commands that read and write entries: get, set, del and dump.

import { readFileSync } from 'node:fs';
import type { Key, UltraDict as UltraDictClass } from '../index.js';
import { msOption, UsageError } from './args.js';
import { type Ctx, EXIT, KeyNotFound, withDict } from './context.js';
import { toJson } from './format.js';

function parseKey(ctx: Ctx, raw: string): Key {
  if (!ctx.p.flags.has('number-key')) return raw;
  const n = raw.trim() === 'NaN' ? NaN : Number(raw);
  if (raw.trim() === '' || (Number.isNaN(n) && raw.trim() !== 'NaN')) throw new UsageError(`--number-key: ${JSON.stringify(raw)} is not a number`);
  return n;
}

function describeKey(k: Key): string {
  return typeof k === 'number' ? `number key ${k}` : `key ${JSON.stringify(k)}`;
}

function missingKey(d: UltraDictClass<unknown>, key: Key): KeyNotFound {
  let hint = '';
  if (typeof key === 'string' && key.trim() !== '' && d.has(Number(key))) hint = ` (the number key ${Number(key)} exists: add --number-key)`;
  if (typeof key === 'number' && d.has(String(key))) hint = ` (the string key "${key}" exists: drop --number-key)`;
  return new KeyNotFound(`no ${describeKey(key)} in ${JSON.stringify(d.name)}${hint}`);
}

export function cmdGet(ctx: Ctx): number {
  const [name, rawKey] = ctx.args as [string, string];
  const key = parseKey(ctx, rawKey);
  return withDict(ctx, name, (d) => {
    if (!d.has(key)) throw missingKey(d, key);
    const v = d.get(key);
    if (ctx.json) ctx.out(toJson({ name, key, value: v }));
    else ctx.out(typeof v === 'string' && ctx.p.flags.has('raw') ? v : toJson(v, 2));
    return EXIT.ok;
  });
}

export function cmdSet(ctx: Ctx): number {
  const [name, rawKey, rawValue] = ctx.args as [string, string, string];
  const key = parseKey(ctx, rawKey);
  const text = rawValue === '-' ? readFileSync(0, 'utf8').replace(/\n$/, '') : rawValue;
  let value: unknown = text;
  if (!ctx.p.flags.has('string')) {
    try {
      value = JSON.parse(text);
    } catch {
      throw new UsageError(`VALUE is not valid JSON: ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + '…' : text)} (add --string to store it as a string)`);
    }
  }
  const ttl = msOption(ctx.p, 'ttl');
  if (ttl !== undefined && !Number.isFinite(ttl)) throw new UsageError(`--ttl must be a finite number of ms, got ${JSON.stringify(ctx.p.values.get('ttl'))}`);
  withDict(ctx, name, (d) => d.set(key, value, ttl === undefined ? undefined : { ttl }));
  if (ctx.json) ctx.out(toJson({ name, key, set: true, ...(ttl === undefined ? {} : { ttl }) }));
  return EXIT.ok;
}

/** ttl NAME KEY: the ms left before KEY expires, or "none" (JSON: null) for a key without expiry. */
export function cmdTtl(ctx: Ctx): number {
  const [name, rawKey] = ctx.args as [string, string];
  const key = parseKey(ctx, rawKey);
  return withDict(ctx, name, (d) => {
    const ms = d.ttl(key);
    if (ms === undefined) throw missingKey(d, key);
    if (ctx.json) ctx.out(toJson({ name, key, ttl: ms === Infinity ? null : ms }));
    else ctx.out(ms === Infinity ? 'none' : String(ms));
    return EXIT.ok;
  });
}

export function cmdDel(ctx: Ctx): number {
  const [name, rawKey] = ctx.args as [string, string];
  const key = parseKey(ctx, rawKey);
  return withDict(ctx, name, (d) => {
    if (!d.delete(key)) throw missingKey(d, key);
    if (ctx.json) ctx.out(toJson({ name, key, deleted: true }));
    return EXIT.ok;
  });
}

export function cmdDump(ctx: Ctx): number {
  const [name] = ctx.args as [string];
  return withDict(ctx, name, (d) => {
    const entries = [...d.entries()];
    ctx.out(toJson(ctx.p.flags.has('entries') ? entries : Object.fromEntries(entries.map(([k, v]) => [String(k), v])), ctx.json ? undefined : 2));
    return EXIT.ok;
  });
}
