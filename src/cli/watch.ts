// The CLI's watch command: prints a dict's changes as they happen, keeping up with a slow output.

import type { Change, Key } from '../index.js';
import { type Ctx, EXIT, open } from './context.js';
import { time, toJson } from './format.js';

/** Changes buffered for printing at most; beyond, they are counted and reported as skipped. */
const MAX_PENDING = 10_000;

function changeLine(c: Change, json: boolean): string {
  if (json) {
    const o: Record<string, unknown> = { time: new Date().toISOString(), type: c.type };
    if (c.path !== undefined && c.path.length > 0) o.path = c.path;
    if (c.key !== undefined) o.key = c.key;
    if (c.type === 'set') o.value = c.value ?? null;
    return toJson(o);
  }
  const show = (k: Key): string => (typeof k === 'number' ? String(k) : JSON.stringify(k));
  const keys = [...(c.path ?? []), ...(c.key === undefined ? [] : [c.key])];
  const where = keys.length === 0 ? '' : `  ${keys.map(show).join(' > ')}`;
  const value = c.type === 'set' ? ` = ${toJson(c.value)}` : '';
  return `${time()}  ${c.type.padEnd(6)}${where}${value}`;
}

/**
 * Prints the dict's change events until Ctrl-C (the signal) or until the dict is removed by name
 * (checked every 250 ms: removal is not a change event). Output waits for a slow terminal or pipe;
 * meanwhile at most MAX_PENDING changes are kept and the rest are counted as skipped.
 */
export async function cmdWatch(ctx: Ctx): Promise<number> {
  const [name] = ctx.args as [string];
  const d = open(ctx, name);
  let pending: Change[] = [];
  let skipped = 0;
  let removed = false;
  let wake: (() => void) | null = null;
  const poke = (): void => wake?.();
  const onChange = (c: Change): void => {
    if (pending.length < MAX_PENDING) pending.push(c);
    else skipped++;
    poke();
  };
  const timer = setInterval(() => {
    try {
      removed = d.stats().unlinked;
    } catch {
      removed = true; // closed under us
    }
    if (removed) poke();
  }, 250);
  d.on('change', onChange);
  ctx.signal.addEventListener('abort', poke);
  try {
    ctx.err(`watching ${JSON.stringify(name)} (${d.size} keys); Ctrl-C to stop`);
    while (!ctx.signal.aborted) {
      if (pending.length > 0) {
        const batch = pending;
        pending = [];
        for (const c of batch) await ctx.out(changeLine(c, ctx.json));
        continue;
      }
      if (skipped > 0) {
        const n = skipped;
        skipped = 0;
        await ctx.out(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type: 'skipped', count: n }) : `${time()}  … ${n} changes not shown (output too slow)`);
        continue;
      }
      if (removed) {
        await ctx.out(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type: 'removed' }) : `${time()}  removed  (the dict was unlinked)`);
        break;
      }
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  } finally {
    clearInterval(timer);
    ctx.signal.removeEventListener('abort', poke);
    d.off('change', onChange);
    d.close();
  }
  return EXIT.ok;
}
