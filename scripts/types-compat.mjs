// After `tsc`: writes dist/ts5.0/, the declarations for TypeScript 5.0-5.5 (package.json "types@<5.6"),
// which do not know the MapIterator type of newer libs: there it reads IterableIterator. Also drops the
// sourceMappingURL comments of the declarations, whose maps are not published.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const dist = 'dist';
const out = join(dist, 'ts5.0');
rmSync(out, { recursive: true, force: true });

function* declarations(dir) {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (p === out) continue;
    if (statSync(p).isDirectory()) yield* declarations(p);
    else if (f.endsWith('.d.ts')) yield p;
  }
}

const noMap = (s) => s.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
for (const file of declarations(dist)) {
  const text = noMap(readFileSync(file, 'utf8'));
  writeFileSync(file, text);
  const target = join(out, relative(dist, file));
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text.replace(/\bMapIterator</g, 'IterableIterator<'));
}
