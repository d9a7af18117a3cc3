// Timing helpers: hrtime-based batch timing, calibration, statistics.

export const nowNs = (): bigint => process.hrtime.bigint();

/** Milliseconds between two hrtime values. */
export const msSince = (start: bigint, end: bigint = nowNs()): number => Number(end - start) / 1e6;

export interface Measurement {
  /** ops/s of each repetition, in the order measured */
  reps: number[];
  median: number;
  min: number;
  max: number;
  /** operations timed in each repetition */
  opsPerRep: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

export function summarize(reps: number[], opsPerRep: number): Measurement {
  return { reps, median: median(reps), min: Math.min(...reps), max: Math.max(...reps), opsPerRep };
}

export interface MeasureOptions {
  /** wall time one repetition should take */
  targetMs: number;
  reps: number;
  /** first batch size tried during calibration */
  startOps: number;
  /** operations are done in multiples of this (batch contenders) */
  multiple?: number;
  /** hard cap on operations per repetition */
  maxOps?: number;
  /** keep running warm-up batches until this much time has passed since the first batch */
  warmupMs?: number;
}

/**
 * Batch timing. `run(n)` performs n operations and returns how many of them found what they expected
 * (the harness checks it equals n, which both verifies the contender and keeps the loop from being
 * optimised away). Calibration doubles n (or jumps towards the target) until one batch takes about
 * targetMs; the calibration runs double as warm-up, followed by full warm-up batches (at least one,
 * and until warmupMs have passed since the start); then `reps` timed repetitions of the same n.
 */
export async function measure(
  run: (n: number) => number | Promise<number>,
  opts: MeasureOptions,
): Promise<Measurement> {
  const multiple = opts.multiple ?? 1;
  const maxOps = opts.maxOps ?? 50_000_000;
  const round = (n: number): number => Math.max(multiple, Math.ceil(n / multiple) * multiple);
  let n = round(opts.startOps);
  const first = nowNs();
  const check = (done: number, expected: number): void => {
    if (done !== expected) throw new Error(`contender returned ${done} correct results out of ${expected}`);
  };
  // calibration (+ warm-up)
  for (let i = 0; i < 30; i++) {
    const t0 = nowNs();
    check(await run(n), n);
    const ms = msSince(t0);
    if (ms >= opts.targetMs * 0.7 || n >= maxOps) break;
    const factor = ms < opts.targetMs / 20 ? 10 : Math.max(1.2, (opts.targetMs / Math.max(ms, 0.001)) * 1.05);
    n = Math.min(round(n * factor), round(maxOps));
  }
  // warm-up at the final size (at least one batch, and at least warmupMs in all)
  do check(await run(n), n);
  while (msSince(first) < (opts.warmupMs ?? 0));
  const reps: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    const t0 = nowNs();
    const done = await run(n);
    const ms = msSince(t0);
    check(done, n);
    reps.push(n / (ms / 1000));
  }
  return summarize(reps, n);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Busy-wait until an hrtime deadline (used to start several processes at the same instant). */
export function spinUntil(deadline: bigint): void {
  while (nowNs() < deadline) {
    /* spin */
  }
}
