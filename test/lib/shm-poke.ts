// Test helper: overwrite bytes of a segment file in /dev/shm (the mapping sees them at once), to corrupt it.

import { closeSync, openSync, writeSync } from 'node:fs';

export function poke(file: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(`/dev/shm/${file}`, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}
