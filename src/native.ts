// The one loader of the native addon (shared memory, futex, liveness); every other module imports it from here.

import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnsupportedPlatformError } from './errors.js';

export interface Mapped {
  buffer: SharedArrayBuffer;
  id: number;
  /** open() only: owner uid and permission bits (mode & 0o7777) of the file that was mapped */
  uid?: number;
  mode?: number;
}

export interface SelfInfo {
  pid: number;
  tid: number;
  startTime: number;
  pidNamespace: number;
}

export interface NativeAddon {
  supported: boolean;
  /** reserve: bytes allocated up front from offset 0 (default: all) */
  create(name: string, size: number, mode: number, reserve?: number): Mapped;
  /** Allocates the pages of a byte range of a mapped segment (ENOSPC if /dev/shm is full). */
  reserve(buffer: SharedArrayBuffer, byteOffset: number, length: number, name: string): boolean;
  /** Maps an existing segment; also returns the file's owner uid and permission bits (fstat). */
  open(name: string): Mapped;
  unmap(id: number): boolean;
  liveMappings(): number;
  unlink(name: string): boolean;
  /** 0 woken, 1 timed out, 2 value differed, 3 interrupted */
  futexWait(buffer: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number;
  futexWake(buffer: SharedArrayBuffer, byteOffset: number, count: number): number;
  /** start time in clock ticks, -1 if the thread is gone (or a zombie), -2 if it cannot be told */
  threadStartTime(pid: number, tid: number): number;
  processAlive(pid: number): boolean;
  self(): SelfInfo;
  /** Starts a native thread that calls `callback` (coalesced) whenever the i32 at byteOffset changes. Unref'd. */
  /** decOffsets: i32 cells decremented by 1 if the thread's env is torn down while watching */
  watchStart(name: string, byteOffset: number, callback: () => void, lastSeen: number, decOffset1?: number, decOffset2?: number): number;
  watchStop(id: number): boolean;
  watchRef(id: number, ref: boolean): boolean;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'ultradict') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new UnsupportedPlatformError('ultradict: cannot find the package root to load the addon');
    dir = parent;
  }
}

function load(): NativeAddon {
  if (process.platform !== 'linux') {
    throw new UnsupportedPlatformError(
      `ultradict supports Linux only for now (this is ${process.platform}); macOS and Windows are planned`,
    );
  }
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  let addon: NativeAddon;
  try {
    addon = nodeGypBuild(packageRoot()) as NativeAddon;
  } catch (cause) {
    throw new UnsupportedPlatformError(
      `ultradict: no native addon for ${process.platform}-${process.arch} (node ${process.version}) and it could not be built; ` +
        `run "npm rebuild ultradict" with a C++ compiler available`,
      { cause },
    );
  }
  if (!addon.supported) throw new UnsupportedPlatformError('ultradict: the native addon does not support this platform');
  return addon;
}

export const native: NativeAddon = load();
