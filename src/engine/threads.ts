// This thread's engines, one per dict incarnation (key: control segment name and tag). Every handle of a
// dict that the thread opens shares it: one local copy, one stream position, one transaction. Two engines
// of one incarnation in one thread would each believe they had synced to the published end while the
// (re-entrant) lock let the other append.

/** What the registry needs of an engine. */
export interface ThreadEngine {
  readonly closed: boolean;
  retain(): void;
  close(): void;
}

const engines = new Map<string, ThreadEngine>();

export function registerEngine(key: string, e: ThreadEngine): void {
  engines.set(key, e);
}

/** Removes e (only if it is still the one registered under key). */
export function forgetEngine(key: string, e: ThreadEngine): void {
  if (engines.get(key) === e) engines.delete(key);
}

/** This thread's open engines (closed at process exit). */
export function openEngines(): ThreadEngine[] {
  return [...engines.values()];
}

/** This thread's open engine of the incarnation `key`, with one more handle on it; null if none. */
export function retainEngine<E extends ThreadEngine>(key: string): E | null {
  const e = engines.get(key);
  if (e === undefined || e.closed) return null;
  e.retain();
  return e as E;
}
