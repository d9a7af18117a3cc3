// The CLI commands that survey and clean up the machine's dicts: ls, inspect, rm and gc.

import type { DictInfo, UltraDictStats } from '../index.js';
import { UsageError } from './args.js';
import { type Ctx, EXIT, withDict } from './context.js';
import { formatBytes, formatDuration, table, toJson } from './format.js';

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LsRow {
  name: string;
  tag: string;
  attachable: boolean;
  ready: boolean;
  keys: number | null;
  /** the dict's default time to live in ms (0: none; null: unknown) */
  ttl: number | null;
  /** expired keys whose delete was published (null: unknown) */
  expired: number | null;
  /** the bounds (0: none) and eviction policy (null: unbounded or unknown) */
  maxKeys: number | null;
  maxBytes: number | null;
  evict: 'lru' | 'fifo' | null;
  /** keys evicted to keep the dict within its bounds (null: unknown) */
  evicted: number | null;
  sharedMemoryBytes: number;
  attachedPids: number[];
  creatorPid: number;
  creatorAlive: boolean;
  createdAt: number | null;
  ageMs: number | null;
  serializer: string;
}

const UNKNOWN = { keys: null, ttl: null, expired: null, maxKeys: null, maxBytes: null, evict: null, evicted: null };
type Counted = Pick<LsRow, keyof typeof UNKNOWN>;

function countKeys(ctx: Ctx, info: DictInfo): Counted {
  if (!info.ready || !info.attachable) return UNKNOWN;
  try {
    return withDict(ctx, info.name, (d) => {
      const s = d.stats();
      if (s.createdAt !== info.createdAt) return UNKNOWN;
      return { keys: d.size, ttl: s.ttl, expired: s.expired, maxKeys: s.maxKeys, maxBytes: s.maxBytes, evict: s.evict, evicted: s.evicted };
    });
  } catch {
    return UNKNOWN; // vanished, custom serializer, corrupt: shown as "?"
  }
}

/** A dict's bounds as ls and inspect show them: "100 keys, 1.0 MiB, lru", or "-" when unbounded. */
function formatBound(maxKeys: number, maxBytes: number, evict: 'lru' | 'fifo' | null): string {
  if (evict === null) return '-';
  const parts = [maxKeys > 0 ? `${maxKeys} keys` : null, maxBytes > 0 ? formatBytes(maxBytes) : null].filter((x) => x !== null);
  return `${parts.join(', ')}, ${evict}`;
}

export function cmdLs(ctx: Ctx): number {
  const now = Date.now();
  const infos = ctx.lib.listDicts().sort((a, b) => a.name.localeCompare(b.name) || a.createdAt - b.createdAt);
  const rows: LsRow[] = infos.map((i) => ({
    name: i.name,
    tag: i.tag,
    attachable: i.attachable,
    ready: i.ready,
    ...countKeys(ctx, i),
    sharedMemoryBytes: i.sharedMemoryBytes,
    attachedPids: i.attachedPids.filter((p) => p !== process.pid),
    creatorPid: i.creatorPid,
    creatorAlive: alive(i.creatorPid),
    createdAt: i.createdAt || null,
    ageMs: i.createdAt ? now - i.createdAt : null,
    serializer: i.serializer,
  }));
  if (ctx.json) {
    ctx.out(JSON.stringify(rows));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    ctx.out('no dicts');
    return EXIT.ok;
  }
  const lines = [['NAME', 'KEYS', 'MEMORY', 'TTL', 'EXPIRED', 'BOUND', 'EVICTED', 'ATTACHED', 'CREATOR', 'AGE', 'SERIALIZER']];
  for (const r of rows) {
    lines.push([
      r.name + (!r.ready ? ' (initialising)' : !r.attachable ? ' (unlinked)' : ''),
      r.keys === null ? '?' : String(r.keys),
      formatBytes(r.sharedMemoryBytes),
      r.ttl === null ? '?' : r.ttl === 0 ? '-' : formatDuration(r.ttl),
      r.expired === null ? '?' : String(r.expired),
      r.keys === null ? '?' : formatBound(r.maxKeys!, r.maxBytes!, r.evict),
      r.evicted === null ? '?' : r.evict === null ? '-' : String(r.evicted),
      r.attachedPids.length === 0 ? '-' : r.attachedPids.join(','),
      `${r.creatorPid}${r.creatorAlive ? '' : ' (dead)'}`,
      r.ageMs === null ? '-' : formatDuration(r.ageMs),
      r.serializer || '-',
    ]);
  }
  ctx.out(table(lines, new Set([1, 2, 4, 6])));
  return EXIT.ok;
}

export async function cmdInspect(ctx: Ctx): Promise<number> {
  const [name] = ctx.args as [string];
  const info = ctx.lib.listDicts().find((i) => i.name === name && i.attachable);
  // a Redis bridge running on this dict answers on its registration socket (no ioredis needed)
  const bridge = info?.tag ? await (await import('../redis/claim.js')).bridgeOf(name, info.tag) : null;
  return withDict(ctx, name, (d) => {
    const s: UltraDictStats = d.stats();
    const now = Date.now();
    const pids = (info?.attachedPids ?? []).filter((p) => p !== process.pid);
    const lock = s.lockHolder === null ? null : { ...s.lockHolder, heldMs: s.lockHolder.since ? now - s.lockHolder.since : null };
    const report = {
      ...s,
      attached: Math.max(0, s.attached - 1), // not counting this command
      attachedPids: pids,
      tag: info?.tag ?? null,
      creatorAlive: alive(s.creatorPid),
      ageMs: now - s.createdAt,
      lockHolder: lock,
      bridge,
    };
    if (ctx.json) {
      ctx.out(JSON.stringify(report));
      return EXIT.ok;
    }
    const pct = s.streamBytesSize > 0 ? ((100 * s.streamBytesUsed) / s.streamBytesSize).toFixed(1) : '0';
    const rows: [string, string][] = [
      ['name', s.name + (s.unlinked ? ' (unlinked)' : '')],
      ['keys', String(s.keys)],
      ['ttl', s.ttl === 0 ? 'none' : `${formatDuration(s.ttl)} (default time to live of a write)`],
      ['expiry', `${s.expiring} key(s) with a deadline here, ${s.expired} expired`],
      ['bounds', s.evict === null ? 'none' : `${formatBound(s.maxKeys, s.maxBytes, s.evict)}; ${formatBytes(s.bytes)} of keys and values here`],
      ['evicted', String(s.evicted)],
      ['serializer', s.serializer + (s.recurse ? ', recurse (nested dicts)' : '')],
      ['created', `${new Date(s.createdAt).toISOString()} (${formatDuration(report.ageMs)} ago) by pid ${s.creatorPid}${report.creatorAlive ? '' : ' (dead)'}`],
      ['attached', `${report.attached} thread(s)${pids.length ? `, pids ${pids.join(', ')}` : ''}`],
      ['lock', lock === null ? 'free' : `held by pid ${lock.pid} (thread ${lock.tid})${lock.heldMs === null ? '' : `, taken ${formatDuration(lock.heldMs)} ago`}`],
      ['lock recoveries', String(s.lockRecoveries)],
      ['change listeners', String(s.listeners)],
      ['generation', String(s.generation)],
      ['stream', `${formatBytes(s.streamBytesUsed)} of ${formatBytes(s.streamBytesSize)} used (${pct}%)`],
      ['dumps', `${s.dumps}${s.dumps ? `, last ${formatBytes(s.lastDumpBytes)}` : ''}`],
      ['bufferSize', formatBytes(s.bufferSize)],
      ['fullDumpSize', s.fullDumpSize ? formatBytes(s.fullDumpSize) : 'none (a segment per dump)'],
      ['shared memory', formatBytes(s.sharedMemoryBytes)],
      [
        'redis bridge',
        bridge === null
          ? 'none'
          : `pid ${bridge.pid} as ${bridge.origin}, stream ${String(bridge.stream)}: ${String(bridge.forwarded)} local writes forwarded, ` +
            `${String(bridge.gaps)} gaps, ${String(bridge.recovered)} keys recovered, ${String(bridge.lost)} keys lost${bridge.online === false ? ' (Redis unreachable)' : ''}`,
      ],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    ctx.out(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    return EXIT.ok;
  });
}

export function cmdRm(ctx: Ctx): number {
  const [name] = ctx.args as [string];
  const { UltraDict, listDicts } = ctx.lib;
  const users = [...new Set(listDicts().filter((i) => i.name === name).flatMap((i) => i.attachedPids))].filter((p) => p !== process.pid);
  if (users.length > 0 && !ctx.p.flags.has('force')) {
    throw new Error(`${JSON.stringify(name)} is in use by pid ${users.join(', ')}: stop them first, or add --force`);
  }
  if (!UltraDict.unlink(name)) throw new ctx.lib.NotFoundError(`no UltraDict named ${JSON.stringify(name)} exists`);
  if (ctx.json) ctx.out(toJson({ name, removed: true }));
  return EXIT.ok;
}

export function cmdGc(ctx: Ctx): number {
  const raw = ctx.p.values.get('grace');
  const graceMs = raw === undefined ? undefined : Number(raw);
  if (graceMs !== undefined && !(graceMs >= 0)) throw new UsageError(`--grace must be a number of ms >= 0, got ${JSON.stringify(raw)}`);
  const removed = ctx.lib.gc({ ...(graceMs === undefined ? {} : { graceMs }), includeDetached: ctx.p.flags.has('all') });
  if (ctx.json) ctx.out(JSON.stringify(removed));
  else ctx.out(removed.length === 0 ? 'nothing to remove' : `removed ${removed.length}: ${removed.join(', ')}`);
  return EXIT.ok;
}
