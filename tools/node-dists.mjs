// The pinned Node.js builds (tools/node-dists.json) in a cache outside the repo: fetch them with npm, find them.
//
// Each is the npm registry's node-linux-<arch>@<version> package (bin/node, include/node/), fetched with
// `npm pack`, checked against the integrity pinned in node-dists.json and unpacked once into
// $ULTRADICT_NODE_CACHE (default ~/.cache/ultradict-node)/node-linux-<arch>-<version>/. Fetching is the only
// step that needs the registry; everything that uses the unpacked folders (prebuilds, test runs) is offline.
//
//   node tools/node-dists.mjs fetch [--arch=x64,arm64] [--line=20,22,24,26]   fetch what is missing
//   node tools/node-dists.mjs dir <arch> <line>                                  print the unpacked folder
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pins = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'node-dists.json'), 'utf8'));

/** The supported Node lines: [{ line, abi, version }]. */
export const lines = pins.lines;
export const arches = ['x64', 'arm64'];

export function cacheDir() {
  return process.env.ULTRADICT_NODE_CACHE || join(homedir(), '.cache', 'ultradict-node');
}

function pin(arch, line) {
  const l = lines.find((x) => x.line === Number(line));
  if (l === undefined || !arches.includes(arch)) throw new Error(`no pinned Node ${line} for ${arch} (lines: ${lines.map((x) => x.line).join(', ')})`);
  const spec = `node-linux-${arch}@${l.version}`;
  return { ...l, arch, spec, dir: join(cacheDir(), `node-linux-${arch}-${l.version}`), tarball: join(cacheDir(), `node-linux-${arch}-${l.version}.tgz`), integrity: pins.integrity[spec] };
}

/** The unpacked folder of a pinned build (bin/node, include/node/); throws if it was not fetched. */
export function distDir(arch, line) {
  const p = pin(arch, line);
  if (!existsSync(join(p.dir, '.complete'))) throw new Error(`${p.spec} is not in ${cacheDir()}: run \`npm run fetch:node\` first (the one step that needs the npm registry)`);
  return p.dir;
}

function integrityOf(file) {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** Fetches and unpacks one pinned build unless it is already there. */
export function fetchDist(arch, line) {
  const p = pin(arch, line);
  if (existsSync(join(p.dir, '.complete'))) return p.dir;
  mkdirSync(cacheDir(), { recursive: true });
  if (!existsSync(p.tarball) || integrityOf(p.tarball) !== p.integrity) {
    rmSync(p.tarball, { force: true });
    console.log(`fetching ${p.spec}`);
    execFileSync('npm', ['pack', p.spec, '--silent', '--pack-destination', cacheDir()], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const got = integrityOf(p.tarball);
  if (got !== p.integrity) {
    rmSync(p.tarball, { force: true });
    throw new Error(`${p.spec}: integrity ${got} differs from the pinned ${p.integrity}`);
  }
  const tmp = `${p.dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('tar', ['xzf', p.tarball, '-C', tmp, '--strip-components=1']);
  writeFileSync(join(tmp, '.complete'), `${p.spec} ${p.integrity}\n`);
  rmSync(p.dir, { recursive: true, force: true });
  renameSync(tmp, p.dir);
  return p.dir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...rest] = process.argv.slice(2);
  const opt = (name, all) => {
    const a = rest.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? all : a.slice(name.length + 3).split(',');
  };
  if (cmd === 'fetch') {
    for (const arch of opt('arch', arches)) for (const line of opt('line', lines.map((l) => String(l.line)))) console.log(fetchDist(arch, line));
  } else if (cmd === 'dir' && rest.length === 2) {
    console.log(distDir(rest[0], rest[1]));
  } else {
    console.error('usage: node tools/node-dists.mjs fetch [--arch=x64,arm64] [--line=20,22,24,26] | dir <arch> <line>');
    process.exit(2);
  }
}
