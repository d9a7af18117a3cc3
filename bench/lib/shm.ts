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

/**
 * Files of /dev/shm whose name contains `token` (ultradict names its segments `ud.<name>` and
 * `ud.<name>.<tag>.s<gen>` / `.d<gen>`; matching on the token keeps this independent of that scheme).
 */
export function shmFiles(token: string): string[] {
  return listShm().filter((f) => f.includes(token));
}

/** The segments of exactly one dict: its name delimited by '.', '/' or the ends of the file name. */
export function dictFiles(name: string): string[] {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`(^|[./])${escaped}($|[.])`);
  return listShm().filter((f) => re.test(f));
}

/** Memory really allocated (tmpfs blocks, not the apparent size) by the segments of one dict. */
export function shmBytes(name: string): { allocated: number; apparent: number; files: number } {
  let allocated = 0;
  let apparent = 0;
  let files = 0;
  for (const f of dictFiles(name)) {
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
