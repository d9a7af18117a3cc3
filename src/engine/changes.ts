// The change feed of one engine: changes queued as they are applied and delivered in order on a
// microtask, the native watcher thread that notices other processes' writes, and the listener count
// and event-loop ref that go with it.

import type { Change } from '../codec/ops.js';
import { OFF_COUNTER, type Control } from '../shm/control.js';
import { native } from '../shm/native.js';

/** Where a feed delivers: the facade's dispatch of changes, and of errors met while syncing in the background. */
export interface ChangeSink {
  changes(changes: Change[]): void;
  error(e: unknown): void;
}

export class ChangeFeed {
  #listening = false;
  #queue: Change[] = [];
  #flushScheduled = false;
  #watcherId = 0;
  #refd = false;
  #holds = 0;
  #sink: ChangeSink | null = null;

  constructor(
    private readonly ctrl: Control,
    private readonly slot: number,
    /** the control segment's current name (it changes when the dict is unlinked) */
    private readonly segName: () => string,
    /** brings the engine up to date (called on the watcher's wake-ups; it queues the changes) */
    private readonly sync: () => void,
  ) {}

  /** Whether changes are being collected (someone listens). */
  get listening(): boolean {
    return this.#listening;
  }

  /** Sets where changes go, once per engine (every handle's listeners are reached through it). */
  deliverTo(sink: ChangeSink): void {
    this.#sink ??= sink;
  }

  /** Queues a change; delivery follows on a microtask, in order. */
  queue(c: Change): void {
    this.#queue.push(c);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Delivers the queued changes (in order). */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#queue.length === 0) return;
    const q = this.#queue;
    this.#queue = [];
    this.#sink?.changes(q);
  }

  /** Starts delivering changes of other processes (native watcher thread + listener count in shared memory). */
  start(seen: number, closed: boolean): void {
    if (this.#listening || closed) return;
    this.#watcherId = native.watchStart(
      this.segName(),
      OFF_COUNTER,
      () => {
        if (!this.#listening) return;
        try {
          this.sync();
        } catch (e) {
          this.#sink?.error(e);
        }
        this.flush();
      },
      seen,
      ...this.ctrl.listeningOffsets(this.slot),
    );
    this.#listening = true;
    this.ctrl.addListening(this.slot, 1);
    this.applyRef();
  }

  /** Stops listening (before the engine releases its slot: the listener count is decremented here). */
  stop(): void {
    if (!this.#listening) return;
    this.#listening = false;
    this.#queue = [];
    if (this.#watcherId !== 0) native.watchStop(this.#watcherId);
    this.#watcherId = 0;
    this.ctrl.addListening(this.slot, -1);
  }

  /** ref(true): listening keeps the event loop alive; hold(+1/-1): an explicit wait does, while it lasts. */
  setRef(ref: boolean): void {
    this.#refd = ref;
    this.applyRef();
  }

  hold(delta: number): void {
    this.#holds += delta;
    this.applyRef();
  }

  private applyRef(): void {
    if (this.#watcherId !== 0) native.watchRef(this.#watcherId, this.#refd || this.#holds > 0);
  }
}
