// Adds to a node_modules the arm64 native packages that the emulated arm64 test run loads (npm ci installs x64 ones).
//
// npm installs a package's platform-specific optional dependencies for the machine only. Under emulation
// (.ci/run's Node 24 arm64 run of npm test) two of them are loaded on arm64:
//   - rolldown's binding: vitest's bundler (the Keyv suite), which has no fallback;
//   - msgpackr-extract's binding: msgpackr, a runtime dependency of ultradict, uses it when present, and an
//     arm64 user's npm installs it, so the emulated run must load it too.
// Each is fetched at the exact version its parent pins (npm pack, into the cache of the pinned Node builds,
// outside the repo) and unpacked beside the x64 one. TypeScript and lmdb have arm64 packages too, but the
// emulated run does not load them: the compilers run on the machine's Node, and lmdb is a benchmark contender.
//
//   node tools/arm64-bindings.mjs <node_modules folder>
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './node-dists.mjs';

/** [the package that pins it, the arm64 package] */
const BINDINGS = [
  ['rolldown', '@rolldown/binding-linux-arm64-gnu'],
  ['msgpackr-extract', '@msgpackr-extract/msgpackr-extract-linux-arm64'],
];

const modules = process.argv[2];
if (modules === undefined || !existsSync(modules)) {
  console.error('usage: node tools/arm64-bindings.mjs <node_modules folder>');
  process.exit(2);
}
const cache = join(cacheDir(), 'bindings');
mkdirSync(cache, { recursive: true });
for (const [parent, binding] of BINDINGS) {
  const manifest = join(modules, parent, 'package.json');
  if (!existsSync(manifest)) throw new Error(`${parent} is not installed in ${modules}`);
  const version = JSON.parse(readFileSync(manifest, 'utf8')).optionalDependencies?.[binding];
  if (version === undefined) throw new Error(`${parent} does not pin ${binding}`);
  const tarball = join(cache, `${binding.replace('@', '').replace('/', '-')}-${version}.tgz`);
  if (!existsSync(tarball)) {
    // npm pack checks the tarball against the registry's integrity
    const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', `${binding}@${version}`, '--json', '--pack-destination', cache, '--loglevel=error'], { encoding: 'utf8' }));
    renameSync(join(cache, filename), tarball);
  }
  const dest = join(modules, binding);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1']);
  console.log(`${binding}@${version} (pinned by ${parent}) -> ${dest}`);
}
