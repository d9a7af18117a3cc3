// Builds the prebuilt addons shipped in the package (prebuilds/linux-<arch>/ultradict.abi<N>.glibc.node), offline.
//
// The addon uses V8's SharedArrayBuffer API next to Node-API, so each build is bound to one Node ABI:
// one file per architecture (x64, arm64) and supported line (ABI 115/127/137/147 = Node 20/22/24/26),
// tagged so that node-gyp-build loads the right one. Headers come from the pinned Node builds in the
// cache (`npm run fetch:node`, tools/node-dists.mjs); arm64 is cross-compiled with Debian's
// g++-aarch64-linux-gnu. The same sources, compiler and headers give the same bytes: build paths are
// mapped out of the objects (-ffile-prefix-map) and the result is stripped. Each build runs in a
// scratch copy of the native sources, so it never touches build/ (which the repo's tests load).
//
//   node tools/prebuild.mjs                     every architecture and line (npm run build:prebuilds)
//   node tools/prebuild.mjs --arch=arm64 --line=24,26   a subset
//   node tools/prebuild.mjs --current           only the running Node on this machine's architecture
//                                               (its own headers when installed next to it, else the cache)
//   --if-stale                                  skip a build whose file is newer than the sources
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arches, distDir, lines } from './node-dists.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
/** The addon's sources (binding.gyp names them), relative to the repo. */
const NATIVE_DIR = join('src', 'shm', 'native');
const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, NATIVE_DIR), { recursive: true }).map((f) => join(root, NATIVE_DIR, String(f)))];
const args = process.argv.slice(2);
const opt = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3).split(',');

/** How to compile for an architecture from this machine (x64 or arm64 host). */
function toolchain(arch) {
  const hostArch = process.arch;
  if (arch === hostArch) return { CC: 'gcc', CXX: 'g++', LINK: 'g++', AR: 'ar', STRIP: 'strip' };
  if (arch === 'arm64') return { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar', STRIP: 'aarch64-linux-gnu-strip' };
  if (arch === 'x64') return { CC: 'x86_64-linux-gnu-gcc', CXX: 'x86_64-linux-gnu-g++', LINK: 'x86_64-linux-gnu-g++', AR: 'x86_64-linux-gnu-ar', STRIP: 'x86_64-linux-gnu-strip' };
  throw new Error(`no toolchain for ${arch}`);
}

export function prebuildFile(arch, abi) {
  return join(root, 'prebuilds', `linux-${arch}`, `ultradict.abi${abi}.glibc.node`);
}

function stale(file) {
  if (!existsSync(file)) return true;
  const built = statSync(file).mtimeMs;
  return sources.some((s) => statSync(s).mtimeMs > built);
}

/** Builds one prebuild with node-gyp against the headers in nodedir; moves it into place atomically. */
function build(arch, abi, nodedir) {
  const file = prebuildFile(arch, abi);
  const stage = mkdtempSync(join(tmpdir(), 'ultradict-prebuild-'));
  try {
    cpSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
    cpSync(join(root, NATIVE_DIR), join(stage, NATIVE_DIR), { recursive: true });
    writeFileSync(join(stage, 'package.json'), JSON.stringify({ name: 'ultradict', private: true }));
    const tc = toolchain(arch);
    // the scratch folder, the repo and the headers vary between machines and runs: not in the bytes
    const prefixMap = [stage, root, nodedir].map((p) => `-ffile-prefix-map=${p}=.`).join(' ');
    const env = {
      ...process.env,
      ...tc,
      CFLAGS: prefixMap,
      CXXFLAGS: prefixMap,
      // binding.gyp runs `node -p "require('node-addon-api').include_dir"` in the scratch folder
      NODE_PATH: join(root, 'node_modules'),
      SOURCE_DATE_EPOCH: '0',
    };
    for (const k of Object.keys(env)) if (k.startsWith('npm_config_')) delete env[k];
    const gyp = require.resolve('node-gyp/bin/node-gyp.js');
    execFileSync(process.execPath, [gyp, 'rebuild', '--release', `--nodedir=${nodedir}`, `--arch=${arch}`, '--loglevel=warn'], { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
    const built = join(stage, 'build', 'Release', 'ultradict.node');
    execFileSync(tc.STRIP, ['--strip-all', built]);
    mkdirSync(dirname(file), { recursive: true });
    // a concurrent `npm pack` sees the old file or the new one
    const tmp = `${file}.${process.pid}.tmp`;
    cpSync(built, tmp);
    renameSync(tmp, file);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  const sha = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
  console.log(`built ${file.slice(root.length + 1)} (${statSync(file).size} bytes, sha256 ${sha}…)`);
}

/** The running Node's own headers, when installed next to it (/usr/include/node for a distro Node). */
function ownHeaders() {
  const dir = resolve(dirname(process.execPath), '..');
  return existsSync(join(dir, 'include', 'node', 'node_api.h')) ? dir : undefined;
}

const ifStale = args.includes('--if-stale');
if (args.includes('--current')) {
  const abi = Number(process.versions.modules);
  const file = prebuildFile(process.arch, abi);
  if (ifStale && !stale(file)) {
    console.log(`prebuild is up to date: ${file}`);
  } else {
    const line = lines.find((l) => l.abi === abi);
    const nodedir = ownHeaders() ?? (line && distDir(process.arch, line.line));
    if (nodedir === undefined) throw new Error(`no headers for Node ${process.version} (ABI ${abi} is not a supported line)`);
    build(process.arch, abi, nodedir);
  }
} else {
  const wantArch = opt('arch') ?? arches;
  const wantLine = (opt('line') ?? lines.map((l) => String(l.line))).map(Number);
  for (const arch of wantArch) {
    for (const l of lines.filter((x) => wantLine.includes(x.line))) {
      const file = prebuildFile(arch, l.abi);
      if (ifStale && !stale(file)) {
        console.log(`up to date: ${file.slice(root.length + 1)}`);
        continue;
      }
      // headers of the target architecture's build of that line
      build(arch, l.abi, distDir(arch, l.line));
    }
  }
}
