// waitForChange() and watch() of one handle: every pending wait is served by one 'change' and one 'close'
// listener, and one 'abort' listener per signal, so that many concurrent waits add no listener each
// (no MaxListenersExceededWarning).

import { abortError } from './args.js';
import type { Change } from './codec/ops.js';

/** What a wait keeps while it lasts (the event loop alive), and how it learns that its handle closed. */
export interface WaitHolder {
  hold(delta: 1 | -1): void;
  closed(): boolean;
}

/** How the waits listen to their handle's 'change' and 'close' events. */
export interface WaitEvents {
  listen(onChange: (c: Change) => void, onClose: () => void): void;
  unlisten(onChange: (c: Change) => void, onClose: () => void): void;
}

export class ChangeWaits {
  /** null: the handle closed */
  readonly #waiters = new Set<(c: Change | null) => void>();
  readonly #onChange = (c: Change): void => {
    for (const w of [...this.#waiters]) w(c);
  };
  readonly #onClose = (): void => {
    for (const w of [...this.#waiters]) w(null);
  };
  readonly #aborts = new Map<AbortSignal, { fns: Set<() => void>; listener: () => void }>();

  constructor(private readonly events: WaitEvents) {}

  private addWaiter(w: (c: Change | null) => void): void {
    if (this.#waiters.size === 0) {
      this.events.listen(this.#onChange, this.#onClose);
    }
    this.#waiters.add(w);
  }

  private removeWaiter(w: (c: Change | null) => void): void {
    if (this.#waiters.delete(w) && this.#waiters.size === 0) {
      this.events.unlisten(this.#onChange, this.#onClose);
    }
  }

  private addAbort(signal: AbortSignal, fn: () => void): void {
    let a = this.#aborts.get(signal);
    if (a === undefined) {
      const fns = new Set<() => void>();
      const listener = (): void => {
        this.#aborts.delete(signal);
        for (const f of [...fns]) f();
      };
      a = { fns, listener };
      this.#aborts.set(signal, a);
      signal.addEventListener('abort', listener, { once: true });
    }
    a.fns.add(fn);
  }

  private removeAbort(signal: AbortSignal, fn: () => void): void {
    const a = this.#aborts.get(signal);
    if (a !== undefined && a.fns.delete(fn) && a.fns.size === 0) {
      this.#aborts.delete(signal);
      signal.removeEventListener('abort', a.listener);
    }
  }

  /** The changes as they come, until the handle closes or `signal` aborts (arguments checked by the caller). */
  async *watch(holder: WaitHolder, signal: AbortSignal | undefined): AsyncGenerator<Change, void, undefined> {
    if (signal?.aborted) throw abortError(signal);
    const queue: Change[] = [];
    let closed = false;
    let wake: (() => void) | null = null;
    const waiter = (c: Change | null): void => {
      if (c === null) closed = true;
      else queue.push(c);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    this.addWaiter(waiter);
    if (signal !== undefined) this.addAbort(signal, onAbort);
    holder.hold(1);
    try {
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (closed || holder.closed()) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.removeWaiter(waiter);
      if (signal !== undefined) this.removeAbort(signal, onAbort);
      holder.hold(-1);
    }
  }

  /** The next change, or null after `timeout` ms or when the handle closes (arguments checked by the caller). */
  next(holder: WaitHolder, timeout: number | undefined, signal: AbortSignal | undefined): Promise<Change | null> {
    return new Promise<Change | null>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.removeWaiter(waiter);
        if (signal !== undefined) this.removeAbort(signal, onAbort);
        holder.hold(-1);
      };
      const waiter = (c: Change | null): void => {
        finish();
        resolve(c);
      };
      const onAbort = (): void => {
        finish();
        reject(abortError(signal!));
      };
      this.addWaiter(waiter);
      if (signal !== undefined) this.addAbort(signal, onAbort);
      holder.hold(1);
      if (timeout !== undefined && timeout !== Infinity) timer = setTimeout(() => waiter(null), timeout);
    });
  }
}
