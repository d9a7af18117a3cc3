// Cost of the serializers alone on the values of workload 1 and 2: context for the write costs.
import v8 from 'node:v8';
import { Packr } from 'msgpackr';
import { valuePool } from './data.js';

export interface SerializerCost {
  value: string;
  /** ns per serialize of [key, value] */
  msgpack: number;
  json: number;
  v8: number;
}

let sink: unknown;

/** ns per call: calibrate n to about targetMs, warm up for at least 3 batches, median of 5 batches. */
function nsPerOp(fn: () => unknown, targetMs: number): number {
  const batch = (n: number): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  let n = 1;
  while (n < 1e8) {
    const ms = batch(n);
    if (ms >= targetMs) break;
    n *= ms < targetMs / 10 ? 10 : 2;
  }
  for (let i = 0; i < 3; i++) batch(n);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) samples.push((batch(n) * 1e6) / n);
  samples.sort((a, b) => a - b);
  return samples[2]!;
}

export function serializerCosts(quick: boolean): SerializerCost[] {
  const packr = new Packr({ useRecords: false });
  const cases: [string, unknown][] = [
    ['small integer', 123],
    ['string 100 B', valuePool('string', 100, 1)[0]],
    ['object 1 KB', valuePool('object', 1000, 1)[0]],
    ['object 100 KB', valuePool('object', 100_000, 1)[0]],
  ];
  const target = quick ? 3 : 20;
  const out = cases.map(([label, v]) => {
    const item = ['k1234', v];
    return {
      value: label,
      msgpack: nsPerOp(() => packr.pack(item), target),
      json: nsPerOp(() => JSON.stringify(item), target),
      v8: nsPerOp(() => v8.serialize(item), target),
    };
  });
  sink = undefined;
  return out;
}
