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

function nsPerOp(fn: () => unknown, targetMs = 30): number {
  let n = 100;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= targetMs || n > 1e8) return (ms * 1e6) / n;
    n *= ms < targetMs / 10 ? 10 : 2;
  }
}

export function serializerCosts(quick: boolean): SerializerCost[] {
  const packr = new Packr({ useRecords: false });
  const cases: [string, unknown][] = [
    ['small integer', 123],
    ['string 100 B', valuePool('string', 100, 1)[0]],
    ['object 1 KB', valuePool('object', 1000, 1)[0]],
    ['object 100 KB', valuePool('object', 100_000, 1)[0]],
  ];
  const target = quick ? 5 : 30;
  return cases.map(([label, v]) => {
    const item = ['k1234', v];
    return {
      value: label,
      msgpack: nsPerOp(() => packr.pack(item), target),
      json: nsPerOp(() => JSON.stringify(item), target),
      v8: nsPerOp(() => v8.serialize(item), target),
    };
  });
}
