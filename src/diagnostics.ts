// Diagnostics: NODE_DEBUG=ultradict lines (util.debuglog) and diagnostics_channel channels for lock
// recoveries, lock hand-offs, dumps, generation switches and attaches (docs/api.md#diagnostics).

import { channel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import { PREFIX } from './shm/names.js';

/** The channels, by event. Messages are plain objects; `name` is always the dict's name. */
export const channels = {
  /** `{ name, deadPid }`: this thread took the lock over from a holder that died (deadPid 0: unknown). */
  lockRecovery: channel('ultradict:lock-recovery'),
  /** `{ name, toSlot }`: releasing the lock, this thread handed it directly to a waiter that had starved. */
  lockHandoff: channel('ultradict:lock-handoff'),
  /** `{ name, generation, bytes, keys }`: this thread wrote a full dump and started `generation`. */
  dump: channel('ultradict:dump'),
  /** `{ name, generation, reload }`: this handle moved to a generation another thread started (reload: from its dump). */
  generation: channel('ultradict:generation'),
  /** `{ name, created, keys, generation }`: a handle attached to the dict, or created it. */
  attach: channel('ultradict:attach'),
} as const;

let log: ReturnType<typeof debuglog> | null = null;

function emit(ch: (typeof channels)[keyof typeof channels], message: Record<string, unknown>, text: () => string): void {
  if (ch.hasSubscribers) ch.publish(message);
  log ??= debuglog('ultradict');
  if (log.enabled) log('%s', text());
}

const q = (name: string): string => JSON.stringify(name);
/** The dict's name from its control segment's name (`/ud.NAME`). */
const dictName = (segment: string): string => (segment.startsWith(`/${PREFIX}`) ? segment.slice(PREFIX.length + 1) : segment);

export function lockRecovered(segment: string, deadPid: number): void {
  const name = dictName(segment);
  emit(channels.lockRecovery, { name, deadPid }, () => `${q(name)}: lock taken over from dead holder pid ${deadPid || '(unknown)'}`);
}

export function lockHandedOff(segment: string, toSlot: number): void {
  const name = dictName(segment);
  emit(channels.lockHandoff, { name, toSlot }, () => `${q(name)}: lock handed to the starved waiter in slot ${toSlot}`);
}

export function dumped(name: string, generation: number, bytes: number, keys: number): void {
  emit(channels.dump, { name, generation, bytes, keys }, () => `${q(name)}: dump of ${keys} keys (${bytes} bytes), generation ${generation} started`);
}

export function generationSwitched(name: string, generation: number, reload: boolean): void {
  emit(channels.generation, { name, generation, reload }, () => `${q(name)}: now at generation ${generation}${reload ? ' (reloaded from its dump)' : ''}`);
}

export function attached(name: string, created: boolean, keys: number, generation: number): void {
  emit(channels.attach, { name, created, keys, generation }, () => `${q(name)}: ${created ? 'created' : 'attached'} (${keys} keys, generation ${generation})`);
}
