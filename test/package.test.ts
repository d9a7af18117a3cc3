// The published package: npm pack, contents, publint + attw, and a compiler-free install used from ESM and CommonJS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UltraDict } from '../src/index.js';
import { uniqueName } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The environment without what the `npm test` around us and the test runner set for themselves. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && k !== 'NODE_TEST_CONTEXT'));
}

function run(cmd: string, args: string[], cwd: string, timeout = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const bin = (name: string): string => join(root, 'node_modules', '.bin', name);

test('npm pack ships only the runtime files, and installs and runs without a compiler (ESM and CommonJS)', { timeout: 180_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'ultradict-pack-'));
  const name = uniqueName('pkg');
  try {
    // the prebuilt addon for this Node ABI (built from src/native in a scratch copy, if missing or stale)
    await run(process.execPath, [join(root, 'tools', 'prebuild.mjs'), '--if-stale'], root, 120_000);
    // dist/ was built by `npm test`; --ignore-scripts skips prepack, which would rebuild dist/ under the
    // feet of the tests running in parallel
    const packed = JSON.parse(await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], root)) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const tarball = join(tmp, packed[0]!.filename);
    const files = packed[0]!.files.map((f) => f.path).sort();

    await t.test('contents: dist, prebuilds, native sources, README and LICENSE; no tests, benches or leftovers', () => {
      const allowed = [
        /^package\.json$/,
        /^README\.md$/,
        /^LICENSE$/,
        /^binding\.gyp$/,
        /^src\/native\/[\w.-]+\.(cc|h)$/,
        /^dist\/[\w./-]+\.(js|d\.ts)$/,
        /^prebuilds\/linux-x64\/ultradict\.abi\d+\.glibc\.node$/,
      ];
      const unexpected = files.filter((f) => !allowed.some((re) => re.test(f)));
      assert.deepEqual(unexpected, [], 'files outside the allowed set');
      for (const f of ['LICENSE', 'README.md', 'binding.gyp', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'src/native/ultradict.cc']) {
        assert.ok(files.includes(f), `ships ${f}`);
      }
      assert.ok(files.includes(`prebuilds/linux-x64/ultradict.abi${process.versions.modules}.glibc.node`), 'ships the prebuild for this Node');
      const stale = files.filter((f) => f.startsWith('dist/') && !f.startsWith('dist/ts5.0/') && !existsSync(join(root, 'src', f.slice(5).replace(/\.(d\.ts|js)$/, '.ts'))));
      assert.deepEqual(stale, [], 'dist/ files without a source in src/ (rm -rf dist && npm run build)');
      assert.match(readFileSync(join(root, 'dist', 'cli.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(pkg.bin, { ultradict: 'dist/cli.js' });
    });

    await t.test('no sourceMappingURL to a map that is not shipped; no script runs on a consumer but install', () => {
      for (const f of files.filter((x) => /\.(js|d\.ts)$/.test(x))) {
        const url = /\/\/# sourceMappingURL=(\S+)/.exec(readFileSync(join(root, f), 'utf8'))?.[1];
        if (url !== undefined) assert.ok(files.includes(join(dirname(f), url)), `${f} points to ${url}, which is not shipped`);
      }
      assert.ok(files.some((f) => f.startsWith('dist/ts5.0/')), 'ships the declarations for TypeScript < 5.6');
      // npm runs preinstall, install and postinstall of a registry dependency (prepare only for git ones)
      const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
      for (const s of ['preinstall', 'postinstall', 'prepare', 'preprepare', 'postprepare']) assert.equal(scripts[s], undefined, s);
      assert.equal(scripts.install, 'node-gyp-build', 'install only loads or builds the addon');
    });

    await t.test('publint and arethetypeswrong pass on the tarball', async () => {
      await run(bin('publint'), ['run', tarball, '--strict'], root);
      // CommonJS consumers load the ESM build through require(esm) (Node >= 20.19), which attw does not model;
      // node16 profile: the ultradict/redis subpath needs `exports`, which TypeScript's old node10 resolution ignores
      await run(bin('attw'), [tarball, '--ignore-rules', 'cjs-resolves-to-esm', '--profile', 'node16', '--format', 'ascii'], root);
    });

    await t.test('installed with --ignore-scripts into a fresh project: ESM, CommonJS and the bin, on the prebuild', async () => {
      const app = join(tmp, 'app');
      await run(process.execPath, ['-e', `require('fs').mkdirSync(${JSON.stringify(app)})`], tmp);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
      await run('npm', ['install', tarball, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 120_000);
      const installed = join(app, 'node_modules', 'ultradict');
      assert.equal(existsSync(join(installed, 'build')), false, 'nothing was compiled');

      // which ultradict addon file this process mapped
      const addonPath = `require('fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).find((p) => p && p.endsWith('.node') && p.includes('/ultradict/'))`;
      // the ESM process creates the dict and, while it holds it, a CommonJS process attaches and writes
      writeFileSync(
        join(app, 'esm.mjs'),
        `import { createRequire } from 'node:module';
         import { execFileSync } from 'node:child_process';
         import { UltraDict, listDicts } from 'ultradict';
         const require = createRequire(import.meta.url);
         const d = new UltraDict({ from: 'esm', list: [1, 2] }, { name: ${JSON.stringify(name)} });
         const cjs = JSON.parse(execFileSync(process.execPath, ['cjs.cjs'], { encoding: 'utf8' }));
         const out = { listed: listDicts().some((i) => i.name === d.name), fromCjs: d.get('from-cjs'), addon: ${addonPath}, cjs };
         d.close();
         console.log(JSON.stringify(out));`,
      );
      writeFileSync(
        join(app, 'cjs.cjs'),
        `const { UltraDict, NotFoundError } = require('ultradict');
         const d = new UltraDict({ name: ${JSON.stringify(name)}, create: false });
         d.set('from-cjs', d.get('list').length);
         const out = { from: d.get('from'), notFound: typeof NotFoundError, addon: ${addonPath} };
         d.close();
         console.log(JSON.stringify(out));`,
      );
      const prebuilt = join(installed, 'prebuilds', 'linux-x64') + '/';
      const r = JSON.parse(await run(process.execPath, ['esm.mjs'], app)) as {
        listed: boolean;
        fromCjs: number;
        addon: string;
        cjs: { from: string; notFound: string; addon: string };
      };
      assert.equal(r.listed, true);
      assert.equal(r.fromCjs, 2, 'the CommonJS process wrote into the dict of the ESM one');
      assert.deepEqual([r.cjs.from, r.cjs.notFound], ['esm', 'function']);
      assert.ok(r.addon.startsWith(prebuilt), `ESM loaded ${r.addon}`);
      assert.ok(r.cjs.addon.startsWith(prebuilt), `CommonJS loaded ${r.cjs.addon}`);

      // ultradict/redis without ioredis (an optional peer dependency, not installed): a clear error on use
      assert.equal(existsSync(join(app, 'node_modules', 'ioredis')), false, 'ioredis is an optional peer, not installed');
      writeFileSync(
        join(app, 'redis.mjs'),
        `import { RedisDict, ReplicationError } from 'ultradict/redis';
         try {
           await RedisDict.open({ name: 'x', redis: 'redis://127.0.0.1:1' });
           console.log('opened');
         } catch (e) {
           console.log(e instanceof ReplicationError ? e.message : 'other: ' + e);
         }`,
      );
      assert.match(await run(process.execPath, ['redis.mjs'], app), /needs the ioredis package: npm install ioredis/);

      const ultradict = join(app, 'node_modules', '.bin', 'ultradict');
      assert.match(await run(ultradict, ['--version'], app), /^\d+\.\d+\.\d+\n$/);
      assert.ok(Array.isArray(JSON.parse(await run(ultradict, ['ls', '--json'], app))));
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    UltraDict.unlink(name); // if the CommonJS step did not get to it
  }
});
