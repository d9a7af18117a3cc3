// Builds the prebuilt addon shipped in the package (prebuilds/<platform>-<arch>/) with prebuildify, offline.
//
// The addon uses V8's SharedArrayBuffer API next to Node-API, so it is bound to one Node ABI: the prebuild
// is tagged with this Node's ABI (e.g. abi115 = Node 20) and libc, and node-gyp-build loads it only there;
// any other Node falls back to the source build of `npm install`. The build runs in a temporary copy of
// the native sources, so it never touches build/ (which the repo's own tests load concurrently).
//
//   node tools/prebuild.mjs              build prebuilds/linux-x64/ultradict.abi<N>.glibc.node
//   node tools/prebuild.mjs --if-stale   only if it is missing or older than the sources
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'src', 'native'), { recursive: true }).map((f) => join(root, 'src', 'native', String(f)))];
const outDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const libc = process.env.LIBC || (existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
const file = join(outDir, `ultradict.abi${process.versions.modules}.${libc}.node`);

/** The node-gyp that npm bundles (no extra download), found next to the npm running us or on PATH. */
function npmNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new Error(`cannot find npm's bundled node-gyp (looked in ${candidates.join(', ')})`);
  return found;
}

/** Headers of the running Node, installed next to it: lets node-gyp build offline (--nodedir). */
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const dir = resolve(dirname(process.execPath), '..');
  return existsSync(join(dir, 'include', 'node', 'node_api.h')) ? dir : undefined;
}

function stale() {
  if (!existsSync(file)) return true;
  const built = statSync(file).mtimeMs;
  return sources.some((s) => statSync(s).mtimeMs > built);
}

if (process.argv.includes('--if-stale') && !stale()) {
  console.log(`prebuild is up to date: ${file}`);
  process.exit(0);
}

const stage = mkdtempSync(join(tmpdir(), 'ultradict-prebuild-'));
try {
  cpSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
  cpSync(join(root, 'src', 'native'), join(stage, 'src', 'native'), { recursive: true });
  writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'ultradict', private: true }));
  const env = {
    // binding.gyp runs `node -p "require('node-addon-api').include_dir"` in the stage directory
    NODE_PATH: join(root, 'node_modules'),
  };
  const nodedir = nodeDir();
  if (nodedir !== undefined) env.npm_config_nodedir = nodedir;
  Object.assign(process.env, env);
  const prebuildify = require('prebuildify');
  await new Promise((ok, fail) =>
    prebuildify(
      {
        cwd: stage,
        out: stage,
        targets: [{ runtime: 'node', target: process.versions.node }],
        napi: false,
        strip: true,
        tagLibc: true,
        nodeGyp: npmNodeGyp(),
        cache: join(stage, 'cache'),
      },
      (err) => (err ? fail(err) : ok()),
    ),
  );
  // into place atomically (a concurrent `npm pack` sees the old file or the new one); builds for other
  // ABIs stay, node-gyp-build picks by tag
  const built = join(stage, 'prebuilds', `${process.platform}-${process.arch}`, basename(file));
  if (!existsSync(built)) throw new Error(`prebuildify did not produce ${basename(file)} (found: ${readdirSync(dirname(built)).join(', ')})`);
  mkdirSync(outDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  cpSync(built, tmp);
  renameSync(tmp, file);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
console.log(`built ${file} (${statSync(file).size} bytes)`);
