// Deterministic keys and values: every contender gets exactly the same ones.

/** mulberry32: small seeded PRNG so every run and every contender uses the same order. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const keyName = (i: number): string => `k${i}`;

export function keys(count: number): string[] {
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) out[i] = keyName(i);
  return out;
}

export function shuffle<T>(items: T[], seed: number): T[] {
  const r = rng(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Up to `sample` distinct keys spread over a key space of `space` keys, in a shuffled order. */
export function accessKeys(space: number, sample: number, seed = 42): string[] {
  const n = Math.min(space, sample);
  const step = space / n;
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = keyName(Math.floor(i * step));
  return shuffle(out, seed);
}

export type ValueKind = 'int' | 'string' | 'object';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function text(length: number, r: () => number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

/**
 * A value whose JSON text is about `bytes` long. Strings: `bytes` ASCII characters. Objects: a record
 * with a few fields and a list of small records (numbers, short strings, booleans), the shape of
 * typical application data, grown until JSON.stringify reaches the size.
 */
export function makeValue(kind: ValueKind, bytes: number, variant: number): unknown {
  const r = rng(1000 + variant * 7919 + bytes);
  if (kind === 'int') return variant;
  if (kind === 'string') return text(bytes, r);
  const obj: { id: number; kind: string; active: boolean; items: { n: number; s: string; b: boolean }[] } = {
    id: variant,
    kind: 'record',
    active: variant % 2 === 0,
    items: [],
  };
  let size = JSON.stringify(obj).length;
  while (size < bytes) {
    const item = { n: Math.floor(r() * 1e6), s: text(8, r), b: r() < 0.5 };
    const add = JSON.stringify(item).length + 1;
    if (size + add > bytes && obj.items.length > 0) break;
    obj.items.push(item);
    size += add;
  }
  return obj;
}

/** A pool of distinct values of one kind and size (writes cycle through it, so they really change). */
export function valuePool(kind: ValueKind, bytes: number, count: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) out.push(makeValue(kind, bytes, i + 1));
  return out;
}
