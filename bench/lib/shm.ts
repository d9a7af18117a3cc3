// /dev/shm accounting: what a dict occupies, and that a run leaves /dev/shm as it found it.
import { readdirSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const SHM_DIR = '/dev/shm';

export function listShm(): string[] {
  try {
    return readdirSync(SHM_DIR);
  } catch {
    return [];
  }
}

/** Files of /dev/shm whose name starts with `prefix`. */
export function shmFiles(prefix: string): string[] {
  return listShm().filter((f) => f.startsWith(prefix));
}

/** Memory really allocated (tmpfs blocks, not the apparent size) by the files starting with `prefix`. */
export function shmBytes(prefix: string): { allocated: number; apparent: number; files: number } {
  let allocated = 0;
  let apparent = 0;
  let files = 0;
  for (const f of shmFiles(prefix)) {
    try {
      const st = statSync(join(SHM_DIR, f));
      allocated += st.blocks * 512;
      apparent += st.size;
      files++;
    } catch {
      /* removed meanwhile */
    }
  }
  return { allocated, apparent, files };
}

export function removeShm(file: string): void {
  rmSync(join(SHM_DIR, file), { force: true });
}
