// The prefix every data segment (update stream, dump) starts with: magic, format version, the dict
// incarnation's id and the generation; written and checked here once for every kind (docs/FORMAT.md).

export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_ID_LO = 8;
export const H_ID_HI = 12;
export const H_GEN = 16;

/** Whose and which generation's segment this is expected to be. */
export interface SegmentOwner {
  idLo: number;
  idHi: number;
  gen: number;
}

/** Writes the prefix at byte `at` of a segment. */
export function writePrefix(dv: DataView, at: number, magic: number, version: number, o: SegmentOwner): void {
  dv.setUint32(at + H_VERSION, version, true);
  dv.setUint32(at + H_ID_LO, o.idLo, true);
  dv.setUint32(at + H_ID_HI, o.idHi, true);
  dv.setFloat64(at + H_GEN, o.gen, true);
  dv.setUint32(at + H_MAGIC, magic, true);
}

/** Checks the prefix at byte `at` (the caller checked the segment is large enough); `bad` throws. */
export function checkPrefix(dv: DataView, at: number, magic: number, version: number, o: SegmentOwner, bad: (why: string) => never): void {
  if (dv.getUint32(at + H_MAGIC, true) !== magic) bad('bad magic');
  const v = dv.getUint32(at + H_VERSION, true);
  if (v !== version) bad(`unknown version ${v}`);
  if (dv.getUint32(at + H_ID_LO, true) !== o.idLo || dv.getUint32(at + H_ID_HI, true) !== o.idHi) bad('belongs to another dict');
  const g = dv.getFloat64(at + H_GEN, true);
  if (g !== o.gen) bad(`generation ${g}, expected ${o.gen}`);
}
