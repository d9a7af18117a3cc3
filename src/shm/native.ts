// The one loader of the native addon (shared memory, futex, liveness); every other module imports it from here.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnsupportedPlatformError } from '../errors.js';

export interface Mapped {
  buffer: SharedArrayBuffer;
  id: number;
  /** open() only: owner uid and permission bits (mode & 0o7777) of the file that was mapped */
  uid?: number;
  mode?: number;
  /** made by Node-API's node_api_create_external_sharedarraybuffer (Node 22+), else by V8 directly */
  viaNodeApi: boolean;
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
  /**
   * Frees the attach slot at the given cells (pid, tid, epoch, listening, listeners total) if the calling
   * thread's env is torn down (worker.terminate()) while the slot still holds this pid, tid and epoch.
   */
  slotGuard(name: string, offsets: [number, number, number, number, number], pid: number, tid: number, epoch: number): number;
  /** Drops a slot guard (the slot was released normally). */
  slotGuardStop(id: number): boolean;
}

/** The platforms the addon is built and tested on (prebuilt in the package). */
export const SUPPORTED_PLATFORMS = ['linux-x64', 'linux-arm64'] as const;

/**
 * The platform as `<os>-<arch>`. ULTRADICT_TEST_PLATFORM overrides it: only the tests set it, to exercise
 * the unsupported-platform path (import works, the constructor throws) on a Linux machine.
 */
export function currentPlatform(): string {
  return process.env.ULTRADICT_TEST_PLATFORM || `${process.platform}-${process.arch}`;
}

/**
 * The folder holding binding.gyp, build/ and prebuilds/, found from this module's own location: dist/shm/native.js
 * in the package (two levels down), out/src/shm/native.js in the repo's test build (three levels down).
 */
function addonRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', '..'), join(here, '..', '..', '..')];
  const found = candidates.find((d) => existsSync(join(d, 'binding.gyp')));
  if (found === undefined) throw new UnsupportedPlatformError(`ultradict: the native addon's folder is not next to ${here} (looked in ${candidates.join(', ')})`);
  return found;
}

/** An addon that is not there: every call throws `error` (the constructor is the first to call it). */
function unsupported(error: () => Error): NativeAddon {
  return new Proxy({ supported: false } as NativeAddon, {
    get(target, key) {
      if (key === 'supported') return false;
      if (typeof key === 'symbol' || key === 'then') return undefined;
      return () => {
        throw error();
      };
    },
  });
}

function load(): NativeAddon {
  const platform = currentPlatform();
  if (!platform.startsWith('linux-')) {
    // importing works (an app that only uses ultradict on its Linux servers still runs here); using it throws
    return unsupported(
      () =>
        new UnsupportedPlatformError(
          `ultradict does not support ${platform}: it runs on ${SUPPORTED_PLATFORMS.join(' and ')} (glibc; Node.js 20, 22, 24, 26), ` +
            `and builds from source on other Linux architectures`,
        ),
    );
  }
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  let addon: NativeAddon;
  try {
    addon = nodeGypBuild(addonRoot()) as NativeAddon;
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
