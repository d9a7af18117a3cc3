// A TypeScript consumer of the published types (dist/*.d.ts through the package's exports), compiled by
// the oldest (5.0) and the newest supported TypeScript without skipLibCheck (test/typescript.test.ts).
// Only syntax TypeScript 5.0 knows: no `using` declarations here (test/types/api.ts has them).

import { AbortError, UltraDict, gc, listDicts, type Change, type Key, type UltraDictEvents } from 'ultradict';
import { Bridge, RedisDict, type RedisDictOptions } from 'ultradict/redis';

const d = new UltraDict<number>({ a: 1 }, { name: 'consumer' });
d.on('change', (c) => {
  const t: Change['type'] = c.type;
  void t;
});
d.once('close', () => {});
// @ts-expect-error: a misspelled event name is a compile error
d.once('clsoe', () => {});
// @ts-expect-error: a misspelled event name is a compile error
d.on('chnage', (c: Change) => void c);
// @ts-expect-error: a 'change' listener gets a Change, not a number
d.on('change', (n: number) => void n);
const events: keyof UltraDictEvents = 'change';
void events;

for (const [k, v] of d.entries()) {
  const key: Key = k;
  const value: number = v;
  void key;
  void value;
}
const keys: Key[] = [...d.keys()];
const values: number[] = [...d.values()];
const asMap: Map<Key, number> = d;
void keys;
void values;
void asMap;
// Map.prototype.getOrInsert/getOrInsertComputed (ES2026; in TypeScript 7's lib ESNext Map)
const got: number = d.getOrInsert('n', 0);
const computed: number = d.getOrInsertComputed('m', (k) => String(k).length);
void got;
void computed;

async function waits(): Promise<void> {
  try {
    await d.waitForChange({ timeout: 10, signal: AbortSignal.timeout(5) });
  } catch (e) {
    if (e instanceof AbortError) console.log(e.cause);
  }
  for await (const c of d.watch()) void c;
}
void waits;
d[Symbol.dispose]();
void gc({ graceMs: 0 });
void listDicts();

async function redis(): Promise<void> {
  const opts: RedisDictOptions = { name: 'r', redis: 'redis://127.0.0.1:6379' };
  const rd = await RedisDict.open<number>(opts);
  const rdAsMap: Map<Key, number> = rd;
  const n: number = rd.getOrInsert('n', 0) + rd.getOrInsertComputed('m', () => 1);
  void rdAsMap;
  void n;
  await rd[Symbol.asyncDispose]();
  const b = await Bridge.start({ name: 'b', redis: 'redis://127.0.0.1:6379' });
  await b[Symbol.asyncDispose]();
}
void redis;
