// Zipf-distributed key ranks for the cache benchmarks (bench/cache.ts, bench/lru-quality.ts): rank r
// (0-based) is drawn with probability proportional to 1 / (r + 1)^s, by inverse transform on the exact
// cumulative distribution (binary search), from the seeded PRNG of data.ts, so every contender sees the
// same sequence.
import { rng } from './data.js';

const cdfs = new Map<string, Float64Array>();

/** The cumulative distribution of Zipf(s) over n ranks (cached: 8 bytes per rank). */
export function zipfCdf(n: number, s: number): Float64Array {
  const id = `${n}:${s}`;
  let cdf = cdfs.get(id);
  if (cdf) return cdf;
  cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) {
    sum += 1 / Math.pow(r + 1, s);
    cdf[r] = sum;
  }
  for (let r = 0; r < n; r++) cdf[r]! /= sum;
  cdf[n - 1] = 1;
  cdfs.set(id, cdf);
  return cdf;
}

/** A function that returns the next rank (0 … n-1) of a Zipf(s) sequence seeded by `seed`. */
export function zipfSampler(n: number, s: number, seed: number): () => number {
  const cdf = zipfCdf(n, s);
  const r = rng(seed);
  return () => {
    const u = r();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** `count` ranks of a Zipf(s) sequence over n ranks. */
export function zipfSequence(n: number, s: number, count: number, seed: number): Int32Array {
  const next = zipfSampler(n, s, seed);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = next();
  return out;
}
