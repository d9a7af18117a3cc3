// The CLI's command table: each command's arguments, options, help lines and the function that runs it.

import { cmdBridge } from './bridge.js';
import { cmdGc, cmdInspect, cmdLs, cmdRm } from './commands-admin.js';
import { cmdDel, cmdDump, cmdGet, cmdSet, cmdTtl } from './commands-data.js';
import type { Ctx } from './context.js';
import { cmdWatch } from './watch.js';

export interface Command {
  args: string[];
  options: string[];
  summary: string;
  details: string;
  run(ctx: Ctx): Promise<number> | number;
}

const COMMON = ['json', 'help', 'lock-timeout', 'owner'];

export const COMMANDS: Record<string, Command> = {
  ls: {
    args: [],
    options: ['json', 'help', 'lock-timeout'],
    summary: 'list every dict on this machine',
    details:
      'Columns: name, keys, bytes in shared memory, live attached processes, creator pid, age, serializer.\n' +
      'A dict marked (unlinked) was removed by name but is still used by the processes attached to it.',
    run: cmdLs,
  },
  inspect: {
    args: ['NAME'],
    options: [...COMMON],
    summary: 'show the statistics of one dict',
    details: 'Keys, stream use, dumps, generation, lock holder (and since when, if it had to wait for the lock),\nserializer, options, attached processes, and the Redis bridge running on it (its counters).',
    run: cmdInspect,
  },
  get: {
    args: ['NAME', 'KEY'],
    options: ['number-key', 'raw', ...COMMON],
    summary: 'print the value of KEY as JSON',
    details: 'Exits with 3 if the dict or the key does not exist.',
    run: cmdGet,
  },
  set: {
    args: ['NAME', 'KEY', 'VALUE'],
    options: ['number-key', 'string', 'ttl', ...COMMON],
    summary: 'set KEY to VALUE (JSON, or a string with --string; "-" reads it from stdin)',
    details:
      'VALUE is parsed as JSON: 42, true, null, \'"text"\', \'{"a":[1,2]}\'. Put -- before a VALUE that starts\n' +
      'with "-" and is not a number: ultradict set NAME KEY -- -x. The dict must exist. With --ttl MS the key\n' +
      'expires MS ms from now (0: never); without it, after the dict\'s ttl option, if it has one.',
    run: cmdSet,
  },
  ttl: {
    args: ['NAME', 'KEY'],
    options: ['number-key', ...COMMON],
    summary: 'print the ms left before KEY expires ("none" if it does not expire)',
    details: 'With --json: {"name", "key", "ttl"}, ttl null for a key without expiry. Exits with 3 if the dict or the key does not exist.',
    run: cmdTtl,
  },
  del: {
    args: ['NAME', 'KEY'],
    options: ['number-key', ...COMMON],
    summary: 'delete KEY',
    details: 'Exits with 3 if the dict or the key does not exist.',
    run: cmdDel,
  },
  dump: {
    args: ['NAME'],
    options: ['entries', ...COMMON],
    summary: 'print the whole contents as JSON',
    details:
      'A JSON object keyed by String(key), like JSON.stringify(dict). With --entries, an array of\n' +
      '[key, value] pairs, which keeps the number key 1 apart from the string key "1".',
    run: cmdDump,
  },
  watch: {
    args: ['NAME'],
    options: [...COMMON],
    summary: 'print changes as they happen, until Ctrl-C',
    details:
      'One line per change: time, type (set, delete, clear, reload), key and value. With --json, one\n' +
      'JSON object per line. Ends with exit code 0 on Ctrl-C (SIGINT), SIGTERM or when the dict is removed.',
    run: cmdWatch,
  },
  rm: {
    args: ['NAME'],
    options: ['json', 'force', 'help'],
    summary: 'remove a dict (every segment of the name)',
    details:
      'Refuses (exit 1) while live processes are attached, unless --force: they then keep their\n' +
      'mappings but the name is gone, and a new dict may be created under it. Exits with 3 if nothing exists.',
    run: cmdRm,
  },
  gc: {
    args: [],
    options: ['json', 'grace', 'all', 'help'],
    summary: 'remove dicts left behind by crashed processes',
    details:
      'Dicts whose attached processes all died without closing (SIGKILL, crash), unlinked dicts nobody\n' +
      'uses, creators that died while initialising, and orphan segments. Dicts that every process closed\n' +
      'cleanly (kept with autoUnlink: false) stay, unless --all.',
    run: cmdGc,
  },
  bridge: {
    args: ['NAME', 'URL'],
    options: ['json', 'help', 'stream', 'id', 'prefix', 'connect-timeout'],
    summary: 'replicate a dict across hosts through a Redis stream (runs until Ctrl-C)',
    details:
      'Joins the local dict NAME (created if missing) to the stream of the same name on the Redis server\n' +
      'at URL (redis://host:port). Run one bridge per host per dict; hosts whose bridges share a stream\n' +
      'converge to the same contents. Needs the ioredis package. See docs/replication.md.',
    run: cmdBridge,
  },
};
