// Issue 14, diagnostics: NODE_DEBUG=ultradict lines and diagnostics_channel messages for attaches, dumps,
// generation switches, lock recoveries (a holder SIGKILLed) and lock hand-offs, from real processes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { execFileSync, spawnSync } from 'node:child_process';
import { UltraDict } from '../src/index.js';
import { Child, fixture, runChild, scaled, uniqueName } from './lib/helpers.js';

/** Collects the messages of the given channels (for dict `name`) while fn runs. */
async function collect(channels: string[], name: string, fn: () => Promise<void> | void): Promise<Array<[string, Record<string, unknown>]>> {
  const got: Array<[string, Record<string, unknown>]> = [];
  const on = (ch: string) => (m: unknown): void => {
    if ((m as { name: string }).name === name) got.push([ch, m as Record<string, unknown>]);
  };
  const subs = channels.map((ch) => [ch, on(ch)] as const);
  for (const [ch, f] of subs) subscribe(ch, f);
  try {
    await fn();
  } finally {
    for (const [ch, f] of subs) unsubscribe(ch, f);
  }
  return got;
}

test('channels: attach, dump (this process) and generation (another process dumped)', async () => {
  const name = uniqueName('diag');
  const got = await collect(['ultradict:attach', 'ultradict:dump', 'ultradict:generation'], name, async () => {
    using d = new UltraDict({ a: 1 }, { name });
    d.dump();
    await runChild('child', { op: 'set', name, key: 'b', value: 2 });
    execFileSync(process.execPath, ['-e', `import('${new URL('../src/index.js', import.meta.url).href}').then(({ UltraDict }) => { const d = new UltraDict({ name: '${name}', create: false }); d.dump(); d.close(); })`]);
    assert.equal(d.get('b'), 2); // the read follows the other process's generation switch
  });
  assert.deepEqual(got, [
    ['ultradict:attach', { name, created: true, keys: 1, generation: 0 }],
    ['ultradict:dump', { name, generation: 1, bytes: (got[1]?.[1] as { bytes: number }).bytes, keys: 1 }],
    ['ultradict:generation', { name, generation: 2, reload: false }],
  ]);
  assert.ok((got[1]![1].bytes as number) > 0);
});

test('a lock taken over from a SIGKILLed holder: a lock-recovery message with the dead pid', async () => {
  const name = uniqueName('diagrec');
  using d = new UltraDict({ name });
  const holder = new Child('child', { op: 'holdLock', name });
  await holder.message('locked');
  const pid = holder.proc.pid;
  await holder.kill9();
  const got = await collect(['ultradict:lock-recovery'], name, () => {
    d.set('after', 1);
  });
  assert.deepEqual(got, [['ultradict:lock-recovery', { name, deadPid: pid }]]);
});

test('NODE_DEBUG=ultradict logs attaches, lock recoveries, dumps and generation switches, one line each', async () => {
  const name = uniqueName('diaglog');
  using d = new UltraDict({ a: 1 }, { name });
  const holder = new Child('child', { op: 'holdLock', name });
  await holder.message('locked');
  const dead = holder.proc.pid;
  await holder.kill9();
  const r = spawnSync(process.execPath, [fixture('diag-log'), name], { env: { ...process.env, NODE_DEBUG: 'ultradict' }, encoding: 'utf8', timeout: scaled(60_000) });
  assert.equal(r.status, 0, r.stderr);
  const q = JSON.stringify(name);
  const mine = r.stderr.split('\n').filter((l) => l.includes(q)).map((l) => l.replace(/^ULTRADICT \d+: /, ''));
  assert.deepEqual(mine, [
    `${q}: attached (1 keys, generation 0)`,
    `${q}: lock taken over from dead holder pid ${dead}`,
    `${q}: dump of 2 keys (${/dump of 2 keys \((\d+) bytes\)/.exec(r.stderr)?.[1]} bytes), generation 1 started`,
    `${q}: now at generation 2`,
  ]);
  assert.match(r.stderr, new RegExp(`^ULTRADICT ${r.pid}: `, 'm'));
  assert.equal(d.get('recovered'), 1);
});

test('NODE_DEBUG=ultradict logs a lock hand-off to a starved waiter', async () => {
  const name = uniqueName('diaghand');
  using d = new UltraDict({ name });
  const old = process.env.NODE_DEBUG;
  process.env.NODE_DEBUG = 'ultradict'; // for the child only: fork copies the environment now
  let c: Child;
  try {
    c = new Child('child', { op: 'holdFor', name, ms: 600 });
  } finally {
    if (old === undefined) delete process.env.NODE_DEBUG;
    else process.env.NODE_DEBUG = old;
  }
  await c.message('locked');
  d.withLock(() => d.set('after', 1)); // waits over 200 ms: the child hands the lock over when it releases
  await c.done();
  const lines = c.stderr.trimEnd().split('\n');
  assert.ok(lines.some((l) => l.startsWith(`ULTRADICT ${c.proc.pid}: ${JSON.stringify(name)}: lock handed to the starved waiter in slot `)), c.stderr);
  assert.equal(d.stats().lockHandoffs, 1);
});
