// Argument checks shared by every options-taking function: known option names, AbortSignal, ms durations.

import { AbortError } from './errors.js';

/** Whether x is an object literal (or has a null prototype): options, initial items, nested dict values. */
export function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const p = Object.getPrototypeOf(x);
  return p === Object.prototype || p === null;
}

/**
 * Checks that `o` is undefined or a plain object with no option other than `known`; throws a TypeError
 * naming the function, the unknown option and the known ones. Returns the options ({} for undefined).
 */
export function checkOptions<T extends object>(o: T | undefined, known: readonly string[], where: string): T {
  if (o === undefined) return {} as T;
  if (!isPlainObject(o)) throw new TypeError(`${where}: options must be a plain object, got ${describe(o)}`);
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new TypeError(`${where}: unknown option ${JSON.stringify(k)} (known: ${known.join(', ')})`);
  }
  return o;
}

/** Throws a TypeError unless `signal` is undefined or an AbortSignal (checked as Node's own APIs do). */
export function checkSignal(signal: unknown, where: string): asserts signal is AbortSignal | undefined {
  if (signal === undefined) return;
  if (
    signal === null ||
    typeof signal !== 'object' ||
    !('aborted' in signal) ||
    typeof (signal as AbortSignal).addEventListener !== 'function' ||
    typeof (signal as AbortSignal).removeEventListener !== 'function'
  ) {
    throw new TypeError(`${where}: option signal must be an AbortSignal, got ${describe(signal)}`);
  }
}

/** Throws a TypeError unless `v` is undefined or a number of ms >= 0 (Infinity allowed only if `infinite`). */
export function checkMs(v: unknown, name: string, where: string, infinite = false): asserts v is number | undefined {
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v >= 0) || (!infinite && !Number.isFinite(v))) {
    throw new TypeError(`${where}: option ${name} must be a number of ms >= 0, got ${describe(v)}`);
  }
}

/** The rejection for an aborted signal, as Node's own APIs make it: an AbortError whose cause is the reason. */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError('The operation was aborted', { cause: signal.reason });
}

/** A short description of a bad argument for error messages: its type, and its value if it is short. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'object') {
    const name = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
    return Array.isArray(v) ? 'an array' : name && name !== 'Object' ? `an instance of ${name}` : 'an object';
  }
  if (typeof v === 'string') return v.length <= 40 ? `the string ${JSON.stringify(v)}` : 'a string';
  if (typeof v === 'symbol') return 'a symbol';
  return `${typeof v} ${String(v)}`;
}

/** Whether fn returned a Promise (or another thenable), which a synchronous lock or transaction cannot cover. */
export function isThenable(x: unknown): boolean {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}

/** Throws a TypeError unless `v` is undefined or a time to live: a finite number of ms >= 0 (0: no expiry). */
export function checkTtl(v: unknown, what: string): asserts v is number | undefined {
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) {
    throw new TypeError(`${what} must be a finite number of ms >= 0 (0: no expiry), got ${describe(v)}`);
  }
}
