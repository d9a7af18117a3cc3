// Dict names and the shared-memory segment names derived from them.

import { randomBytes } from 'node:crypto';
import { InvalidNameError } from '../errors.js';

/** Prefix of every segment ultradict creates; `ls`/`gc` find dicts by it. */
export const PREFIX = 'ud.';
export const MAX_NAME_LENGTH = 100;
const NAME_RE = /^[A-Za-z0-9_-]+$/;

export function validateName(name: unknown): string {
  if (typeof name !== 'string') throw new InvalidNameError(`dict name must be a string, got ${typeof name}`);
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new InvalidNameError(
      `invalid dict name ${JSON.stringify(name.length > 120 ? name.slice(0, 120) + '…' : name)}: ` +
        `use 1 to ${MAX_NAME_LENGTH} characters from A-Z a-z 0-9 _ - (no "/", ".", NUL or spaces)`,
    );
  }
  return name;
}

export function randomName(): string {
  return 'ud_' + randomBytes(6).toString('hex');
}

/** Control segment of a dict: "/ud.<name>". */
export function controlSegment(name: string): string {
  return `/${PREFIX}${name}`;
}

/** Suffix of a control segment that was unlinked while processes were still attached. */
export const RETIRED = '.ctl';

/** The name a dict's control segment has once unlinked while others are attached: "/ud.<name>.<tag>.ctl". */
export function retiredControlSegment(name: string, tag: string): string {
  return `${controlSegment(name)}.${tag}${RETIRED}`;
}

/** What data segment names are made of: the incarnation's tag and the random parts in its control block. */
export interface DataNames {
  /** hex of the dict's random id */
  readonly tag: string;
  /** random name part of generation gen (recorded in the control block before gen is published) */
  nonce(gen: number): string;
  /** random name part of the fixed dump area */
  readonly fixedNonce: string;
}

/** Prefix of the data segments of one incarnation of a dict (dictTag = hex of its random id). */
function dataPrefix(name: string, dictTag: string): string {
  return `/${PREFIX}${name}.${dictTag}`;
}

// The random parts make the names unpredictable: another user cannot take a name before the dict
// creates it (a file planted there would make the creation fail).
export function streamSegment(name: string, d: DataNames, gen: number): string {
  return `${dataPrefix(name, d.tag)}.s${gen}.${d.nonce(gen)}`;
}

export function dumpSegment(name: string, d: DataNames, gen: number): string {
  return `${dataPrefix(name, d.tag)}.d${gen}.${d.nonce(gen)}`;
}

export function fixedDumpSegment(name: string, d: DataNames): string {
  return `${dataPrefix(name, d.tag)}.dump.${d.fixedNonce}`;
}

/**
 * Parses a file name found in /dev/shm. Returns the dict name and whether it is the control segment,
 * or null when the file is not an ultradict segment.
 */
export function parseSegmentFile(file: string): { name: string; control: boolean } | null {
  if (!file.startsWith(PREFIX)) return null;
  const rest = file.slice(PREFIX.length);
  const dot = rest.indexOf('.');
  const name = dot < 0 ? rest : rest.slice(0, dot);
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) return null;
  return { name, control: dot < 0 };
}
