// Issue 14, the command line: --json on every command, a "too many arguments" message, bridge --connect-timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { UltraDict } from '../src/index.js';
import { scaled, uniqueName } from './lib/helpers.js';
import { CLI } from './lib/paths.js';
import { freePort } from './lib/servers.js';

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: scaled(60_000) }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

test('--json is taken by every command: one JSON value per line on stdout, errors as JSON on stderr', async () => {
  const name = uniqueName('clijson');
  using d = new UltraDict({ a: { x: 1 } }, { name });
  const run = async (...args: string[]): Promise<unknown> => {
    const r = await cli(...args, '--json');
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line`);
    return JSON.parse(lines[0]!);
  };
  assert.deepEqual(await run('get', name, 'a'), { name, key: 'a', value: { x: 1 } });
  assert.deepEqual(await run('set', name, 'b', '2'), { name, key: 'b', set: true });
  assert.equal(d.get('b'), 2);
  assert.deepEqual(await run('dump', name), { a: { x: 1 }, b: 2 });
  assert.deepEqual(await run('del', name, 'b'), { name, key: 'b', deleted: true });
  assert.equal(d.has('b'), false);
  const missing = await cli('get', name, 'nope', '--json');
  assert.equal(missing.code, 3);
  assert.equal((JSON.parse(missing.stderr) as { error: { code: string } }).error.code, 'ULTRADICT_KEY_NOT_FOUND');
  const both = await cli('get', name, 'a', '--json', '--raw');
  assert.equal(both.code, 2);
  const other = uniqueName('clijson-rm');
  new UltraDict({ name: other, autoUnlink: false }).close();
  assert.deepEqual(await run('rm', other), { name: other, removed: true });
  assert.equal(UltraDict.exists(other), false);
  for (const c of ['get', 'set', 'del', 'dump', 'rm', 'bridge']) assert.match((await cli(c, '--help')).stdout, /--json/, c);
});

test('too many arguments say so, and name what is left over', async () => {
  const set = await cli('set', 'n', 'k', '{"a":', '1}');
  assert.equal(set.code, 2);
  assert.match(set.stderr, /too many arguments: set takes NAME KEY VALUE, and "1}" is left over \(quote a VALUE that has spaces/);
  const ls = await cli('ls', 'x', 'y');
  assert.match(ls.stderr, /too many arguments: ls takes no arguments, and "x" "y" are left over/);
  const few = await cli('set', 'n', 'k');
  assert.match(few.stderr, /set needs NAME KEY VALUE: VALUE missing/);
});

test('bridge --connect-timeout: a port where nothing listens fails within the given time, with exit code 1', async () => {
  const port = await freePort();
  const name = uniqueName('clibridge');
  const r = await cli('bridge', name, `redis://127.0.0.1:${port}`, '--connect-timeout', '300');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /within 300 ms/);
  assert.equal(UltraDict.exists(name), false, 'the dict the bridge created is removed again');
  const bad = await cli('bridge', name, `redis://127.0.0.1:${port}`, '--connect-timeout', 'soon');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--connect-timeout must be a number of ms >= 0/);
});
