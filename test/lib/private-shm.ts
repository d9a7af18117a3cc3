// Runs a program with a private, empty /dev/shm (a tmpfs in its own mount namespace), apart from other tests.
// What it does with dicts there cannot meet other tests' processes, names or gc() calls.

import { spawnSync } from 'node:child_process';

let checked: string | null | undefined;

/** Null if programs can be run with a private /dev/shm here (root, unshare), else why not. */
export function privateShmUnavailable(): string | null {
  if (checked !== undefined) return checked;
  if (process.getuid?.() !== 0) return (checked = 'not root: cannot mount a private tmpfs on /dev/shm');
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /dev/shm && test -z "$(ls /dev/shm)"'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) return (checked = `unshare is not available: ${r.error.message}`);
  if (r.status !== 0) return (checked = `unshare -m + mount tmpfs not permitted: ${(r.stderr || '').trim() || `exit ${r.status}`}`);
  return (checked = null);
}

/** [command, args] that run argv with a private /dev/shm of `size` (argv unchanged where unavailable). */
export function withPrivateShm(argv: string[], size = '256m'): [string, string[]] {
  if (privateShmUnavailable() !== null) return [argv[0]!, argv.slice(1)];
  return ['unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=${size},mode=1777 tmpfs /dev/shm && exec "$0" "$@"`, ...argv]];
}
