// The published package: npm pack, contents, publint + attw, and a compiler-free install used from ESM and CommonJS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { UltraDict } from '../src/index.js';
import { scaled, uniqueName } from './lib/helpers.js';
import { ROOT as root } from './lib/paths.js';


/** The environment without what the `npm test` around us and the test runner set for themselves. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && k !== 'NODE_TEST_CONTEXT'));
}

function run(cmd: string, args: string[], cwd: string, timeout = 60_000, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: { ...cleanEnv(), ...env }, timeout: scaled(timeout), maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const bin = (name: string): string => join(root, 'node_modules', '.bin', name);

test('npm pack ships only the runtime files, and installs and runs without a compiler (ESM and CommonJS)', { timeout: scaled(240_000) }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'ultradict-pack-'));
  const name = uniqueName('pkg');
  try {
    // the prebuilt addon for this Node ABI and architecture (built from src/shm/native in a scratch copy, if
    // missing or stale; `npm run build:prebuilds` builds them all)
    await run(process.execPath, [join(root, 'tools', 'prebuild.mjs'), '--current', '--if-stale'], root, 120_000);
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
        /^src\/shm\/native\/[\w.-]+\.(cc|h)$/,
        /^dist\/[\w./-]+\.(js|d\.ts)$/,
        /^prebuilds\/linux-(x64|arm64)\/ultradict\.abi(115|127|137|147)\.glibc\.node$/,
        /^scripts\/install\.mjs$/,
      ];
      const unexpected = files.filter((f) => !allowed.some((re) => re.test(f)));
      assert.deepEqual(unexpected, [], 'files outside the allowed set');
      for (const f of ['LICENSE', 'README.md', 'binding.gyp', 'scripts/install.mjs', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'src/shm/native/addon.cc', 'src/shm/native/common.h']) {
        assert.ok(files.includes(f), `ships ${f}`);
      }
      assert.ok(files.includes(`prebuilds/linux-${process.arch}/ultradict.abi${process.versions.modules}.glibc.node`), 'ships the prebuild for this Node');
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
      assert.equal(scripts.install, 'node scripts/install.mjs', 'install only finds, or builds, the addon');
    });

    // the emulated arm64 runs (.ci/run) skip this: the tarball's metadata is the same on every architecture
    const skipLint = process.env.ULTRADICT_TEST_SKIP_LINT === '1' && 'checked in the native runs';
    await t.test('publint and arethetypeswrong pass on the tarball', { skip: skipLint }, async () => {
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
      // exactly the prebuild of this line (ABI) and architecture
      const prebuilt = join(installed, 'prebuilds', `linux-${process.arch}`, `ultradict.abi${process.versions.modules}.glibc.node`);
      const r = JSON.parse(await run(process.execPath, ['esm.mjs'], app)) as {
        listed: boolean;
        fromCjs: number;
        addon: string;
        cjs: { from: string; notFound: string; addon: string };
      };
      assert.equal(r.listed, true);
      assert.equal(r.fromCjs, 2, 'the CommonJS process wrote into the dict of the ESM one');
      assert.deepEqual([r.cjs.from, r.cjs.notFound], ['esm', 'function']);
      assert.equal(r.addon, prebuilt, 'the ESM process loaded the prebuild of this line');
      assert.equal(r.cjs.addon, prebuilt, 'the CommonJS process loaded the prebuild of this line');

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

      // ultradict/keyv and ultradict/express-rate-limit without their libraries: a clear error on import
      for (const [subpath, peer] of [['keyv', 'keyv'], ['express-rate-limit', 'express-rate-limit']] as const) {
        assert.equal(existsSync(join(app, 'node_modules', peer)), false, `${peer} is an optional peer, not installed`);
        writeFileSync(join(app, `${subpath}.mjs`), `import('ultradict/${subpath}').then(() => console.log('imported'), (e) => console.log(e.code + ': ' + e.message));`);
        assert.equal(
          await run(process.execPath, [`${subpath}.mjs`], app),
          `ULTRADICT_MISSING_PEER: ultradict/${subpath} needs the ${peer} package, an optional peer dependency of ultradict: npm install ${peer}\n`,
        );
      }

      const ultradict = join(app, 'node_modules', '.bin', 'ultradict');
      assert.match(await run(ultradict, ['--version'], app), /^\d+\.\d+\.\d+\n$/);
      assert.ok(Array.isArray(JSON.parse(await run(ultradict, ['ls', '--json'], app))));
    });

    await t.test('installed with its install script on Linux: the prebuild of this line is found, nothing is compiled', async () => {
      const app = join(tmp, 'app-scripts');
      await run(process.execPath, ['-e', `require('fs').mkdirSync(${JSON.stringify(app)})`], tmp);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
      // no compiler for the install script: a source build would fail instead of passing unnoticed
      const out = await run('npm', ['install', tarball, '--omit=optional', '--foreground-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app, 120_000, {
        CC: '/bin/false',
        CXX: '/bin/false',
      });
      assert.doesNotMatch(out, /not supported|gyp/, out);
      const installed = join(app, 'node_modules', 'ultradict');
      assert.equal(existsSync(join(installed, 'build')), false, 'nothing was compiled');
      const prebuilt = join(installed, 'prebuilds', `linux-${process.arch}`, `ultradict.abi${process.versions.modules}.glibc.node`);
      writeFileSync(
        join(app, 'use.mjs'),
        `import { UltraDict } from 'ultradict';
         import { readFileSync } from 'node:fs';
         const d = new UltraDict(); d.set('a', 1); const v = d.get('a'); d.unlink(); d.close();
         const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).find((p) => p && p.endsWith('.node') && p.includes('/ultradict/'));
         console.log(JSON.stringify({ v, addon }));`,
      );
      assert.deepEqual(JSON.parse(await run(process.execPath, ['use.mjs'], app)), { v: 1, addon: prebuilt });
    });

    await t.test('an app depending on ultradict installs on macOS and Windows (forced platform, install scripts on)', async () => {
      for (const [os, cpu] of [['darwin', 'arm64'], ['win32', 'x64']] as const) {
        const app = join(tmp, `app-${os}`);
        await run(process.execPath, ['-e', `require('fs').mkdirSync(${JSON.stringify(app)})`], tmp);
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
        // the install script sees the platform through the tests-only override (npm's own os/cpu check
        // cannot be forced for a direct dependency: the package must simply not declare os or cpu, below)
        const env = { ULTRADICT_TEST_PLATFORM: `${os}-${cpu}` };
        const out = await run(
          'npm',
          ['install', tarball, '--omit=optional', '--foreground-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
          app,
          120_000,
          env,
        );
        const notice = out.split('\n').filter((l) => l.startsWith('ultradict:'));
        assert.equal(notice.length, 1, `one notice line:\n${out}`);
        assert.match(notice[0]!, new RegExp(`^ultradict: ${os}-${cpu} is not supported \\(linux-x64 and linux-arm64 are\\)`));
        assert.equal(existsSync(join(app, 'node_modules', 'ultradict', 'build')), false, 'no build attempted');
        // npm refuses (EBADPLATFORM) to install a package whose os/cpu fields exclude the machine, and with
        // it every app that depends on it
        const manifest = JSON.parse(readFileSync(join(app, 'node_modules', 'ultradict', 'package.json'), 'utf8')) as Record<string, unknown>;
        assert.deepEqual([manifest.os, manifest.cpu, manifest.libc], [undefined, undefined, undefined], 'no os, cpu or libc restriction');
        writeFileSync(
          join(app, 'use.mjs'),
          `import { UltraDict, UnsupportedPlatformError } from 'ultradict';
           try { new UltraDict(); console.log('constructed'); } catch (e) { console.log(e instanceof UnsupportedPlatformError ? e.message : 'other: ' + e); }`,
        );
        assert.match(await run(process.execPath, ['use.mjs'], app, 60_000, env), new RegExp(`^ultradict does not support ${os}-${cpu}: it runs on linux-x64 and linux-arm64`));
      }
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    UltraDict.unlink(name); // if the CommonJS step did not get to it
  }
});
