// The `ultradict` command line, run as a child process against dicts other processes use, and once in tmux.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { UltraDict } from '../src/index.js';
import { Child, scaled, uniqueName, waitFor } from './lib/helpers.js';
import { CLI, ROOT as root } from './lib/paths.js';
import { privateShmUnavailable, withPrivateShm } from './lib/private-shm.js';
import { which } from './lib/servers.js';


interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: scaled(30_000) }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await cli(...args);
  assert.equal(r.code, 0, `ultradict ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Lines of a long-running CLI process (watch), collected as they arrive. */
class Watcher {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), scaled(60_000));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => (clearTimeout(timer), resolve(code))));
  }
  json(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  async started(): Promise<void> {
    await waitFor(() => this.stderr.includes('Ctrl-C') || this.proc.exitCode !== null, 'watch to start');
  }
}

test('help, version and usage errors', async () => {
  const help = await ok('--help');
  for (const c of ['ls', 'inspect NAME', 'get NAME KEY', 'set NAME KEY VALUE', 'del NAME KEY', 'dump NAME', 'watch NAME', 'rm NAME', 'gc']) {
    assert.match(help, new RegExp(`ultradict ${c}`), c);
  }
  assert.match(help, /Exit codes:/);
  for (const c of ['ls', 'inspect', 'get', 'set', 'del', 'dump', 'watch', 'rm', 'gc']) {
    const a = await ok(c, '--help');
    assert.match(a, new RegExp(`^Usage: ultradict ${c}`), c);
    assert.equal(await ok('help', c), a);
  }
  assert.match(await ok('--version'), /^\d+\.\d+\.\d+/);
  const none = await cli();
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Usage:/);
  for (const args of [['frobnicate'], ['ls', '--bogus'], ['get', 'x'], ['ls', 'extra'], ['gc', '--force'], ['get', 'a/b', 'k'], ['gc', '--grace', 'soon']]) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^ultradict: /);
  }
  const j = await cli('ls', '--json', '--bogus');
  assert.equal(j.code, 2);
  assert.equal((JSON.parse(j.stderr) as { error: { code: string } }).error.code, 'USAGE');
});

test('get, set, del, dump, ls and inspect on a dict another process is writing', async () => {
  const name = uniqueName('cli');
  const d = new UltraDict<unknown>({ a: 1, s: 'text', o: { list: [1, 2] } }, { name });
  d.set(7, 'seven');
  const writer = await nodeScript(
    `import { UltraDict } from 'ultradict'; const d = new UltraDict({ name: '${name}', create: false }); let i = 0; d.set('w1', ++i); setInterval(() => d.set('w1', ++i), 2); console.log('ready');`,
  );
  try {

    assert.equal(await ok('get', name, 'a'), '1\n');
    assert.deepEqual(JSON.parse(await ok('get', name, 'o')), { list: [1, 2] });
    assert.equal(await ok('get', name, 's'), '"text"\n');
    assert.equal(await ok('get', name, 's', '--raw'), 'text\n');
    assert.ok(Number(await ok('get', name, 'w1')) > 0, 'sees the other process’s writes');
    const numberKey = await cli('get', name, '7');
    assert.equal(numberKey.code, 3);
    assert.match(numberKey.stderr, /number key 7 exists: add --number-key/);
    assert.equal(await ok('get', name, '7', '--number-key'), '"seven"\n');
    assert.equal(await ok('get', '-n', name, '7'), '"seven"\n');

    await ok('set', name, 'k', '{"x":[1,"two"]}');
    assert.deepEqual(d.get('k'), { x: [1, 'two'] });
    await ok('set', name, 'neg', '-5');
    assert.equal(d.get('neg'), -5);
    await ok('set', name, 'str', 'hello world', '--string');
    assert.equal(d.get('str'), 'hello world');
    await ok('set', name, '-n', '8', 'null');
    assert.equal(d.get(8), null);
    const notJson = await cli('set', name, 'k', 'hello');
    assert.equal(notJson.code, 2);
    assert.match(notJson.stderr, /not valid JSON.*--string/);

    // (bounds from the clock around each command, not a fixed margin: a command takes seconds under emulation)
    const t0 = Date.now();
    await ok('set', name, 'session', '1', '--ttl', '60000');
    const given = d.ttl('session')!;
    assert.ok(given <= 60_000 && given >= 60_000 - (Date.now() - t0), `set --ttl gave the key its expiry: ${given} ms left`);
    const before = d.ttl('session')!;
    const left = Number(await ok('ttl', name, 'session'));
    const after = d.ttl('session')!;
    assert.ok(left <= before + 1 && left >= after - 1 && after > 0, `ttl printed ${left}, between ${after} and ${before}`);
    assert.equal(await ok('ttl', name, 'a'), 'none\n');
    assert.deepEqual(JSON.parse(await ok('ttl', name, 'a', '--json')), { name, key: 'a', ttl: null });
    assert.equal((await cli('ttl', name, 'missing')).code, 3);
    assert.equal((await cli('set', name, 'x', '1', '--ttl', '-1')).code, 2);
    assert.equal(d.has('x'), false);
    await ok('del', name, 'session');

    await ok('del', name, 'k');
    assert.equal(d.has('k'), false);
    assert.equal((await cli('del', name, 'k')).code, 3);

    const dump = JSON.parse(await ok('dump', name)) as Record<string, unknown>;
    assert.equal(dump.a, 1);
    assert.equal(dump['7'], 'seven');
    assert.equal(dump['8'], null);
    assert.equal(typeof dump.w1, 'number');
    const entries = JSON.parse(await ok('dump', name, '--entries')) as [unknown, unknown][];
    assert.ok(entries.some(([k, v]) => k === 7 && v === 'seven'));

    const ls = JSON.parse(await ok('ls', '--json')) as Array<Record<string, unknown>>;
    const row = ls.find((r) => r.name === name)!;
    assert.ok(row, 'ls lists the dict');
    assert.equal(row.creatorPid, process.pid);
    assert.equal(row.creatorAlive, true);
    assert.equal(row.keys, d.size);
    assert.equal(row.serializer, 'msgpack');
    assert.equal(row.ttl, 0);
    assert.equal(row.expired, 0);
    assert.deepEqual(new Set(row.attachedPids as number[]), new Set([process.pid, writer.pid]));
    assert.ok((row.sharedMemoryBytes as number) > 0);
    const human = await ok('ls');
    assert.match(human, /^NAME +KEYS +MEMORY +TTL +EXPIRED +BOUND +EVICTED +ATTACHED +CREATOR +AGE +SERIALIZER$/m);
    assert.match(human, new RegExp(`^${name} +\\d+ +[\\d.]+ (B|KiB|MiB) +`, 'm'));

    const info = JSON.parse(await ok('inspect', name, '--json')) as Record<string, unknown>;
    assert.equal(info.name, name);
    assert.equal(info.attached, 2, 'the parent and the writer, not the CLI itself');
    assert.equal(info.serializer, 'msgpack');
    assert.equal(info.bufferSize, d.stats().bufferSize);
    assert.match(await ok('inspect', name), /^stream +.* used \(/m);

    // the CLI attached and left: it never unlinks, and its slots are free again
    assert.equal(UltraDict.exists(name), true);
    assert.equal(d.stats().attached, 2);
  } finally {
    await kill9(writer);
    d.close();
    UltraDict.unlink(name); // the SIGKILLed writer never detached
  }
});

test('ls and inspect show a dict\'s bounds, its policy and how many keys it evicted', async () => {
  const name = uniqueName('clibound');
  using d = new UltraDict<unknown>({ name, maxKeys: 5, maxBytes: 1 << 20, evict: 'fifo' });
  for (let i = 0; i < 8; i++) d.set(`k${i}`, i);
  const row = (JSON.parse(await ok('ls', '--json')) as Array<Record<string, unknown>>).find((r) => r.name === name)!;
  assert.deepEqual([row.keys, row.maxKeys, row.maxBytes, row.evict, row.evicted], [5, 5, 1 << 20, 'fifo', 3]);
  assert.match(await ok('ls'), new RegExp(`^${name} .* 5 keys, 1\\.0 MiB, fifo +3 `, 'm'));
  const human = await ok('inspect', name);
  assert.match(human, /^bounds +5 keys, 1\.0 MiB, fifo; [\d.]+ B of keys and values here$/m);
  assert.match(human, /^evicted +3$/m);
  const info = JSON.parse(await ok('inspect', name, '--json')) as Record<string, unknown>;
  assert.deepEqual([info.maxKeys, info.evict, info.evicted], [5, 'fifo', 3]);
  assert.ok((info.bytes as number) > 0);
});

test('not found, lock timeout (naming the holder), rm of a dict in use', async () => {
  const missing = await cli('dump', uniqueName('missing'));
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /no UltraDict named/);

  const name = uniqueName('clilock');
  const d = new UltraDict<unknown>({ name });
  const holder = new Child('child', { op: 'holdLock', name });
  try {
    await holder.message('locked');
    const info = JSON.parse(await ok('inspect', name, '--json')) as { lockHolder: { pid: number; heldMs: number | null } };
    assert.equal(info.lockHolder.pid, holder.proc.pid);
    assert.ok(info.lockHolder.heldMs === null || info.lockHolder.heldMs >= 0);
    assert.match(await ok('inspect', name), new RegExp(`^lock +held by pid ${holder.proc.pid} `, 'm'));
    const t = await cli('set', name, 'k', '1', '--lock-timeout', '100');
    assert.equal(t.code, 1);
    assert.match(t.stderr, new RegExp(`held by pid ${holder.proc.pid}`));
    const busy = await cli('rm', name);
    assert.equal(busy.code, 1, 'rm refuses while processes are attached');
    assert.match(busy.stderr, /in use by pid .*--force/);
    assert.equal(UltraDict.exists(name), true);
    await ok('rm', name, '--force');
    assert.equal(UltraDict.exists(name), false);
    assert.equal((await cli('rm', name)).code, 3);
  } finally {
    await holder.kill9();
    d.close();
    UltraDict.unlink(name);
  }
});

test('ls shows a dead creator, rm removes a dict nobody uses, gc removes what a SIGKILL left (private /dev/shm)', { skip: privateShmUnavailable() ?? false }, async () => {
  // in a private /dev/shm: other tests' gc() would race us for dicts that nobody is attached to
  const driver = `
    import { spawn, spawnSync } from 'node:child_process';
    import { UltraDict } from 'ultradict';
    const cli = (...a) => {
      const r = spawnSync(process.execPath, [${JSON.stringify(CLI)}, ...a], { encoding: 'utf8' });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const r = {};
    const p = spawn(process.execPath, ['--input-type=module', '-e',
      "import { UltraDict } from 'ultradict'; new UltraDict({ a: 1 }, { name: 'orphan' }); console.log('ready'); setInterval(() => {}, 1000);"],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => p.stdout.once('data', resolve));
    p.kill('SIGKILL');
    await new Promise((resolve) => p.once('exit', resolve));
    r.pid = p.pid;
    r.ls = cli('ls', '--json');
    r.lsHuman = cli('ls');
    new UltraDict({ x: 1 }, { name: 'kept', autoUnlink: false }).close();
    r.rm = cli('rm', 'kept');
    r.keptExists = UltraDict.exists('kept');
    r.rmAgain = cli('rm', 'kept');
    r.gc = cli('gc', '--json');
    r.orphanExists = UltraDict.exists('orphan');
    r.gcAgain = cli('gc');
    r.lsEmpty = cli('ls');
    console.log(JSON.stringify(r));
  `;
  const [cmd, args] = withPrivateShm([process.execPath, '--input-type=module', '-e', driver]);
  const out = await new Promise<string>((resolve, reject) =>
    execFile(cmd, args, { cwd: root, timeout: scaled(60_000) }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
  type R = { code: number; out: string; err: string };
  const r = JSON.parse(out) as Record<string, R> & { pid: number; keptExists: boolean; orphanExists: boolean };
  assert.equal(r.ls.code, 0, r.ls.err);
  const row = (JSON.parse(r.ls.out) as Array<{ name: string; creatorPid: number; creatorAlive: boolean; attachedPids: number[]; keys: number }>).find(
    (x) => x.name === 'orphan',
  )!;
  assert.deepEqual([row.creatorPid, row.creatorAlive, row.attachedPids, row.keys], [r.pid, false, [], 1]);
  assert.match(r.lsHuman.out, new RegExp(`^orphan +1 .* ${r.pid} \\(dead\\)`, 'm'));
  assert.equal(r.rm.code, 0, r.rm.err);
  assert.equal(r.keptExists, false);
  assert.equal(r.rmAgain.code, 3);
  assert.equal(r.gc.code, 0, r.gc.err);
  assert.deepEqual(JSON.parse(r.gc.out), ['orphan']);
  assert.equal(r.orphanExists, false);
  assert.equal(r.gcAgain.out, 'nothing to remove\n');
  assert.equal(r.lsEmpty.out, 'no dicts\n');
});

test('watch streams the changes another process makes, until Ctrl-C', async () => {
  const name = uniqueName('cliwatch');
  const d = new UltraDict<unknown>({ name });
  const w = new Watcher(['watch', name, '--json']);
  try {
    await w.started();
    const seen = (pred: (c: Record<string, unknown>) => boolean): boolean => w.json().some(pred);
    d.set('greeting', { hello: 'world' });
    await waitFor(() => seen((c) => c.type === 'set' && c.key === 'greeting'), 'the set to be watched');
    d.set(5, 'five');
    await waitFor(() => seen((c) => c.type === 'set' && c.key === 5 && c.value === 'five'), 'a number key');
    d.delete('greeting');
    await waitFor(() => seen((c) => c.type === 'delete' && c.key === 'greeting'), 'the delete');
    d.clear();
    await waitFor(() => seen((c) => c.type === 'clear' || (c.type === 'delete' && c.key === 5)), 'the clear');
    const set = w.json().find((c) => c.key === 'greeting')!;
    assert.deepEqual(set.value, { hello: 'world' });
    assert.ok(!Number.isNaN(Date.parse(set.time as string)));
    w.proc.kill('SIGINT');
    assert.equal(await w.exited, 0, w.stderr);
    assert.equal(UltraDict.exists(name), true, 'watch detached without unlinking');
  } finally {
    if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await w.exited;
    d.close();
    UltraDict.unlink(name);
  }
});

test('watch ends by itself when the dict is removed', async () => {
  const name = uniqueName('cliwatch2');
  const d = new UltraDict<unknown>({ name });
  const w = new Watcher(['watch', name]);
  try {
    await w.started();
    d.set('k', 1);
    await waitFor(() => w.lines.some((l) => /\bset +"k" = 1$/.test(l)), 'the human-readable set line');
    d.unlink();
    assert.equal(await w.exited, 0, w.stderr);
    assert.match(w.lines.at(-1)!, /removed/);
  } finally {
    if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await w.exited;
    d.close();
    UltraDict.unlink(name);
  }
});

/** A node process running `code` (an ES module that may import 'ultradict'); resolves once it prints "ready". */
async function nodeScript(code: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor(() => out.includes('ready') || p.exitCode !== null, 'the script to start');
  if (!out.includes('ready')) throw new Error(`the script exited with ${p.exitCode}`);
  return p;
}

async function kill9(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}

test('in a real terminal (tmux): watch shows another process’s writes live and Ctrl-C ends it', { skip: which('tmux') === null && 'tmux is not installed' }, async () => {
  const name = uniqueName('clitmux');
  const socket = `ud-cli-test-${process.pid}`;
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'w');
  const d = new UltraDict<unknown>({ name });
  // another process writes a counter 20 times a second
  const writer = await nodeScript(
    `import { UltraDict } from 'ultradict'; const d = new UltraDict({ name: '${name}', create: false }); let i = 0; setInterval(() => d.set('tick', ++i), 50); console.log('ready');`,
  );
  try {
    tmux('new-session', '-d', '-s', 'w', '-x', '120', '-y', '30', '-c', root, 'sh');
    tmux('send-keys', '-t', 'w', `node dist/cli.js watch ${name}; echo "exit=$?"`, 'Enter');
    const see = async (what: string, cond: (s: string) => boolean): Promise<void> => {
      try {
        await waitFor(() => cond(screen()), what);
      } catch (e) {
        throw new Error(`${(e as Error).message}; the screen:\n${screen()}`);
      }
    };
    await see('the watch banner', (s) => s.includes(`watching "${name}"`) && s.includes('Ctrl-C to stop'));
    await see('live set lines', (s) => (s.match(/^\d\d:\d\d:\d\d\.\d{3}  set +"tick" = \d+$/gm) ?? []).length >= 3);
    tmux('send-keys', '-t', 'w', 'C-c');
    await see('Ctrl-C to end watch with exit code 0', (s) => s.includes('exit=0'));
    d.set('after', 1);
    assert.equal(UltraDict.exists(name), true, 'Ctrl-C detached without unlinking');
  } finally {
    try {
      tmux('kill-server');
    } catch {
      // already gone
    }
    await kill9(writer);
    d.close();
    UltraDict.unlink(name);
  }
});
