// A mapped shared-memory segment: create/open/unlink through the addon, typed views, and OS errors as typed errors.

import { native } from './native.js';
import { CorruptSegmentError, SharedMemoryError, UnsupportedPlatformError } from '../errors.js';

export const SHM_DIR = '/dev/shm';

/**
 * Checks a segment just opened before anything in it is used (owner and permissions, see trust.ts).
 * gone(): whether the name may have been reused since it was looked up (its generation is no longer
 * the published one); a segment that fails its checks then counts as missing instead of as an error.
 */
export interface SegmentGuard {
  check(seg: Segment): void;
  gone(): boolean;
}

export class Segment {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly dv: DataView;
  readonly buf: Buffer;
  readonly size: number;
  /** Owner uid and permission bits of the file (fstat when opened; this process's when created). */
  readonly uid: number;
  readonly mode: number;
  private id: number;

  private constructor(
    readonly name: string,
    readonly buffer: SharedArrayBuffer,
    id: number,
    uid: number,
    mode: number,
  ) {
    this.id = id;
    this.uid = uid;
    this.mode = mode;
    this.size = buffer.byteLength;
    this.u8 = new Uint8Array(buffer);
    this.i32 = new Int32Array(buffer, 0, this.size >>> 2);
    this.dv = new DataView(buffer);
    this.buf = Buffer.from(buffer);
  }

  /**
   * Creates a new segment (exclusively); throws SharedMemoryError with osCode 'EEXIST' if taken. Only
   * the first `reserve` bytes (default: all) are allocated; reserve() the rest before writing there.
   */
  static create(name: string, size: number, mode: number, reserve?: number): Segment {
    try {
      const m = native.create(name, size, mode, reserve);
      return new Segment(name, m.buffer, m.id, process.geteuid?.() ?? -1, mode);
    } catch (e) {
      throw osError(e, `cannot create shared memory segment ${name} (${size} bytes)`);
    }
  }

  /**
   * Opens an existing segment; throws SharedMemoryError with osCode 'ENOENT' if missing. With a guard,
   * the segment is checked (owner, permissions) before it is returned, and unmapped if it fails.
   */
  static open(name: string, guard?: SegmentGuard): Segment {
    let seg: Segment;
    try {
      const m = native.open(name);
      seg = new Segment(name, m.buffer, m.id, m.uid ?? -1, m.mode ?? -1);
    } catch (e) {
      throw osError(e, `cannot open shared memory segment ${name}`);
    }
    if (guard !== undefined) {
      try {
        guard.check(seg);
      } catch (e) {
        seg.unmap();
        throw e;
      }
    }
    return seg;
  }

  /**
   * Opens a segment, or returns null if it does not exist. An empty file is a CorruptSegmentError
   * unless emptyIsCorrupt is false (then a SharedMemoryError with osCode 'EEMPTY').
   */
  static tryOpen(name: string, emptyIsCorrupt = true, guard?: SegmentGuard): Segment | null {
    try {
      return Segment.open(name, guard);
    } catch (e) {
      if (e instanceof SharedMemoryError && e.osCode === 'ENOENT') return null;
      // a name of a generation that was unlinked meanwhile may have been taken by anyone: missing
      if (guard?.gone()) return null;
      if (emptyIsCorrupt && e instanceof SharedMemoryError && e.osCode === 'EEMPTY') {
        throw new CorruptSegmentError(`${name} is empty: not an ultradict segment`);
      }
      throw e;
    }
  }

  /** Removes a segment name; returns false if it did not exist. Mapped memory stays valid for its users. */
  static unlink(name: string): boolean {
    try {
      return native.unlink(name);
    } catch (e) {
      throw osError(e, `cannot unlink shared memory segment ${name}`);
    }
  }

  /**
   * Removes a segment name unless the OS refuses it (EACCES, EPERM: another user's file in the sticky
   * /dev/shm). Returns whether it was removed; other errors are thrown.
   */
  static unlinkIfAllowed(name: string): boolean {
    try {
      return native.unlink(name);
    } catch (e) {
      const code = (e as { code?: string } | null)?.code;
      if (code === 'EACCES' || code === 'EPERM') return false;
      throw osError(e, `cannot unlink shared memory segment ${name}`);
    }
  }

  /** Allocates the pages of [offset, offset + length), so that writing there cannot fault. */
  reserve(offset: number, length: number): void {
    try {
      native.reserve(this.buffer, offset, length, this.name);
    } catch (e) {
      throw osError(e, `cannot allocate ${length} bytes of shared memory segment ${this.name}`);
    }
  }

  /** Unmaps now instead of at garbage collection. No view of this segment may be used afterwards. */
  unmap(): void {
    if (this.id !== 0) {
      native.unmap(this.id);
      this.id = 0;
    }
  }

  get mapped(): boolean {
    return this.id !== 0;
  }
}

export function osError(e: unknown, what: string): SharedMemoryError | UnsupportedPlatformError {
  if (e instanceof UnsupportedPlatformError) return e; // no addon on this platform: not an OS error
  const code = (e as { code?: string } | null)?.code;
  const hint =
    code === 'ENOSPC' || code === 'ENOMEM'
      ? ' (shared memory is full: free space in /dev/shm or raise its size, e.g. docker --shm-size)'
      : code === 'EACCES' || code === 'EPERM'
        ? ' (permission denied: the segment belongs to another user or its mode forbids access)'
        : code === 'EMFILE' || code === 'ENFILE'
          ? ' (too many open files)'
          : '';
  return new SharedMemoryError(`${what}: ${(e as Error)?.message ?? String(e)}${hint}`, code, { cause: e });
}
