// Whose segments a handle maps: the owner and permission checks made when attaching and on every later open of a data segment.

import { ForeignSegmentError } from '../errors.js';
import type { Segment } from './segment.js';

/** The `owner` option: the uid trusted to own the dict's segments, or 'any'. Default: the effective uid. */
export type OwnerOption = 'any' | number;

const MAX_UID = 0xfffffffe; // (uid_t)-1 means "no uid"

export function validateOwner(v: unknown): OwnerOption | undefined {
  if (v === undefined || v === 'any') return v;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_UID) {
    throw new TypeError(`option owner must be 'any' or a uid (an integer from 0 to ${MAX_UID})`);
  }
  return v;
}

const oct = (m: number): string => '0o' + m.toString(8).padStart(3, '0');

export function euid(): number {
  return process.geteuid?.() ?? -1;
}

/**
 * The checks of one handle. The control segment must be owned by the trusted uid; every segment (the
 * control block and each data segment) must have exactly the dict's recorded permission bits. A data
 * segment may be owned by the dict's owner, by this process's user (its own writes) or by the trusted
 * uid: the processes of a shared dict write segments under their own uids.
 */
export class Trust {
  private readonly me = euid();

  constructor(
    /** undefined: this process's effective uid */
    readonly owner: OwnerOption | undefined,
    /** the dict's recorded mode (the requested one until the header is read: see learn()) */
    private mode: number,
    /** uid of the control segment's file */
    private dictOwner: number,
  ) {}

  /** Once the control block is read: the dict's recorded mode and the uid that owns it. */
  learn(mode: number, dictOwner: number): void {
    this.mode = mode;
    this.dictOwner = dictOwner;
  }

  /** The control segment: only its owner can be checked before its header is known. */
  checkOwner(seg: Segment): void {
    if (this.owner === 'any') return;
    const want = this.owner ?? this.me;
    if (seg.uid === want) return;
    throw new ForeignSegmentError(
      `${seg.name} is owned by uid ${seg.uid}, not by uid ${want}` +
        (this.owner === undefined ? " (this process's effective uid)" : ' (the owner option)') +
        `: refusing to attach to another user's dict (pass the option owner: ${seg.uid}, or 'any', to trust it)`,
      seg.name,
      seg.uid,
      seg.mode,
    );
  }

  checkMode(seg: Segment): void {
    if (seg.mode === this.mode) return;
    throw new ForeignSegmentError(
      `${seg.name} has permissions ${oct(seg.mode)} (owner uid ${seg.uid}) but the dict was created with mode ${oct(this.mode)}: ` +
        'its permissions were changed after creation, refusing to use it',
      seg.name,
      seg.uid,
      seg.mode,
    );
  }

  checkData(seg: Segment): void {
    this.checkMode(seg);
    if (this.owner === 'any' || seg.uid === this.dictOwner || seg.uid === this.me || seg.uid === this.owner) return;
    throw new ForeignSegmentError(
      `${seg.name} is owned by uid ${seg.uid}, but the dict belongs to uid ${this.dictOwner} and this process runs as uid ${this.me}` +
        ": refusing to map another user's segment (pass the option owner: 'any' to trust every user)",
      seg.name,
      seg.uid,
      seg.mode,
    );
  }
}
