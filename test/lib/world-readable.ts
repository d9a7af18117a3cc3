// Copies what a test runs as another user (nobody) into a world-readable temp folder.
// The checkout itself may not be readable by that user (a clone in a 0700 home). The copy mirrors the checkout's layout
// (package.json, binding.gyp (the addon's folder is found by it), build/, prebuilds/, out/src, the fixture, the runtime node_modules), so the library
// finds its addon and dependencies there exactly as in the checkout.

import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (out/test/lib/ is three levels below it). */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The runtime dependencies of the package, and theirs, that are installed (optional ones may be missing). */
function runtimeModules(): string[] {
  const out = new Set<string>();
  const visit = (pkgJson: string): void => {
    const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as { dependencies?: object; optionalDependencies?: object };
    for (const dep of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) {
      const dir = join('node_modules', dep);
      if (out.has(dir) || !existsSync(join(root, dir, 'package.json'))) continue;
      out.add(dir);
      visit(join(root, dir, 'package.json'));
    }
  };
  visit(join(root, 'package.json'));
  // platform packages of optional native parts (e.g. @msgpackr-extract/msgpackr-extract-linux-x64)
  return [...out];
}

function makeReadable(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const f of readdirSync(path)) makeReadable(join(path, f));
  } else {
    chmodSync(path, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

export interface ReadableCopy extends Disposable {
  /** The copy of a file or folder given relative to the checkout. */
  path(rel: string): string;
}

/**
 * Copies the library and `extra` (paths relative to the checkout, e.g. a compiled fixture) into a new
 * world-readable folder under the temp dir. Returns null with the reason if `uid` still cannot read it
 * (a TMPDIR that user cannot enter).
 */
export function worldReadableCopy(extra: string[], uid: number): ReadableCopy | string {
  const dir = mkdtempSync(join(tmpdir(), 'ud-other-user-'));
  const items = ['package.json', 'binding.gyp', 'build/Release', 'prebuilds', 'out/src', ...runtimeModules(), ...extra];
  for (const rel of items) {
    if (existsSync(join(root, rel))) cpSync(join(root, rel), join(dir, rel), { recursive: true, dereference: true });
  }
  makeReadable(dir);
  const copy: ReadableCopy = {
    path: (rel) => join(dir, rel),
    [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }),
  };
  const probe = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1])', join(dir, 'package.json')], { uid, gid: uid, encoding: 'utf8' });
  if (probe.status !== 0) {
    copy[Symbol.dispose]();
    return `user ${uid} cannot read a copy in ${tmpdir()} (set TMPDIR to a folder it can enter): ${probe.stderr.trim().split('\n')[0]}`;
  }
  return copy;
}
