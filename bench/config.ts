// What a full run and a --quick run measure. Every contender gets the same parameters.
import type { ValueKind } from './lib/data.js';

export interface ValueCase {
  kind: ValueKind;
  bytes: number;
  /** keys in the dict for this case (100 KB values: fewer keys, or the dict would be 1 GB) */
  keys: number;
}

export interface Config {
  quick: boolean;
  /** repetitions of every measurement (the table shows their median and min-max) */
  reps: number;
  /** workload 1: 10,000 keys, small integer values */
  w1Keys: number;
  w1TargetMs: number;
  /** minimum warm-up time of each measurement (JIT tier-up, connections, caches) */
  warmupMs: number;
  w2Cases: ValueCase[];
  w2TargetMs: number;
  w3Ns: number[];
  w3DurationMs: number;
  w4SamplesPerRep: number;
  w5Sizes: number[];
  /** distinct keys read/written in the growth workload, spread over the whole key space */
  w5Sample: number;
  w5TargetMs: number;
  /** hard limit for one job (host process and its workers are killed past it) */
  jobTimeoutMs: number;
  /**
   * Contenders measured in workloads 2-5 (null: all). The quick run keeps one row per kind of store
   * there (it has a minute for everything); the full run measures every contender everywhere.
   */
  reducedSet: string[] | null;
}

const w2 = (keysSmall: number, keysLarge: number): ValueCase[] => [
  { kind: 'string', bytes: 100, keys: keysSmall },
  { kind: 'object', bytes: 100, keys: keysSmall },
  { kind: 'string', bytes: 1_000, keys: keysSmall },
  { kind: 'object', bytes: 1_000, keys: keysSmall },
  { kind: 'string', bytes: 100_000, keys: keysLarge },
  { kind: 'object', bytes: 100_000, keys: keysLarge },
];

export function config(quick: boolean): Config {
  return quick
    ? {
        quick,
        reps: 5,
        w1Keys: 10_000,
        w1TargetMs: 15,
        warmupMs: 20,
        w2Cases: [
          { kind: 'string', bytes: 100, keys: 1_000 },
          { kind: 'object', bytes: 1_000, keys: 1_000 },
          { kind: 'string', bytes: 100_000, keys: 100 },
        ],
        w2TargetMs: 5,
        w3Ns: [1, 2],
        w3DurationMs: 30,
        w4SamplesPerRep: 40,
        w5Sizes: [1_000, 50_000],
        w5Sample: 10_000,
        w5TargetMs: 10,
        jobTimeoutMs: 60_000,
        reducedSet: ['map', 'ultradict-msgpack', 'redis', 'memcached', 'lmdb', 'sqlite', 'manager'],
      }
    : {
        quick,
        reps: 5,
        w1Keys: 10_000,
        w1TargetMs: 200,
        warmupMs: 300,
        w2TargetMs: 60,
        w2Cases: w2(1_000, 100),
        w3Ns: [1, 2, 4, 8],
        w3DurationMs: 250,
        w4SamplesPerRep: 400,
        w5Sizes: [1_000, 100_000, 1_000_000],
        w5Sample: 10_000,
        w5TargetMs: 60,
        jobTimeoutMs: 240_000,
        reducedSet: null,
      };
}
