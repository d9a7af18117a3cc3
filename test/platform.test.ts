// Unsupported platforms (forced with the tests-only ULTRADICT_TEST_PLATFORM): the install script succeeds with a
// one-line notice and builds nothing, importing works, and the constructor throws UnsupportedPlatformError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { scaled, uniqueName } from './lib/helpers.js';
import { ROOT as root } from './lib/paths.js';

const index = pathToFileURL(join(root, 'out', 'src', 'index.js')).href;

function node(args: string[], platform: string, cwd = root): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, ULTRADICT_TEST_PLATFORM: platform };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8', timeout: scaled(60_000) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const platform of ['darwin-arm64', 'win32-x64']) {
  test(`on ${platform}: importing works, the constructor throws UnsupportedPlatformError naming the supported platforms`, () => {
    const script = `
      import { UltraDict, UnsupportedPlatformError } from ${JSON.stringify(index)};
      const out = { imported: typeof UltraDict };
      try {
        new UltraDict({ name: 'never-created' });
        out.constructed = true;
      } catch (e) {
        out.error = { isUnsupported: e instanceof UnsupportedPlatformError, code: e.code, message: e.message };
      }
      console.log(JSON.stringify(out));`;
    const r = node(['--input-type=module', '-e', script], platform);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { imported: string; constructed?: boolean; error?: { isUnsupported: boolean; code: string; message: string } };
    assert.equal(out.imported, 'function');
    assert.equal(out.constructed, undefined, 'the constructor must throw');
    assert.equal(out.error?.isUnsupported, true);
    assert.equal(out.error?.code, 'ULTRADICT_UNSUPPORTED_PLATFORM');
    assert.match(out.error.message, new RegExp(`does not support ${platform}`));
    assert.match(out.error.message, /linux-x64 and linux-arm64/);
  });

  test(`on ${platform}: the install script prints one line, builds nothing and succeeds`, () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ultradict-install-'));
    try {
      const r = node([join(root, 'scripts', 'install.mjs')], platform, cwd);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      const lines = r.stdout.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, r.stdout);
      assert.match(lines[0]!, new RegExp(`^ultradict: ${platform} is not supported \\(linux-x64 and linux-arm64 are\\)`));
      assert.deepEqual(readdirSync(cwd), [], 'nothing built');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
}

test('on Linux the override is not needed: this machine loads the addon', () => {
  const r = node(['--input-type=module', '-e', `import { UltraDict } from ${JSON.stringify(index)}; const d = new UltraDict(); d.set('a', 1); console.log(d.get('a')); d.unlink(); d.close();`], `linux-${process.arch}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '1\n');
});

test('the segments are wrapped by Node-API where the node binary has node_api_create_external_sharedarraybuffer (Node 22 and later), by V8 on Node 20', async () => {
  const { native } = await import('../src/shm/native.js');
  const name = `/ud.${uniqueName('napi')}`;
  const m = native.create(name, 4096, 0o600);
  try {
    assert.equal(m.viaNodeApi, Number(process.versions.modules) >= 127, `Node ${process.version}`);
    new Int32Array(m.buffer)[1] = 42;
    const again = native.open(name);
    assert.equal(new Int32Array(again.buffer)[1], 42, 'the same memory');
    native.unmap(again.id);
  } finally {
    native.unmap(m.id);
    native.unlink(name);
  }
});
