// The published declarations type-check, without skipLibCheck, with the oldest supported TypeScript (5.0,
// the typescript-5.0 devDependency), the one the package is built with (typescript) and the newest
// (typescript-latest), as a consumer compiles them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaled } from './lib/helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// What the compiler says does not depend on the machine: the emulated arm64 run (.ci/run) gives the machine's
// own Node here (ULTRADICT_TEST_COMPILER_NODE). Same compilers, same declarations, same checks, without minutes
// of tsc under qemu-user; and TypeScript 7 is a native program, installed for the machine's architecture only.
const compilerNode = process.env.ULTRADICT_TEST_COMPILER_NODE || process.execPath;
const by = compilerNode === process.execPath ? '' : ' (tsc run by the native Node: emulated run)';

function tsc(pkg: string, project: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(compilerNode, [join(root, 'node_modules', pkg, 'bin', 'tsc'), '-p', join(root, 'test', 'types-compat', project)], { cwd: root, timeout: scaled(120_000) }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, out: stdout + stderr });
    });
  });
}

const version = (pkg: string): string => (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

for (const [pkg, project] of [
  ['typescript-5.0', 'tsconfig.json'],
  // lib ESNext: Map iterators with the iterator helpers (MapIterator), a superset of the default libs
  ['typescript', 'tsconfig.esnext.json'],
  ['typescript-latest', 'tsconfig.json'],
  // TypeScript 7's lib ESNext gives Map getOrInsert/getOrInsertComputed (ES2026): both dicts implement them
  ['typescript-latest', 'tsconfig.esnext.json'],
] as const) {
  test(`the published types compile with TypeScript ${version(pkg)} (${project}, no skipLibCheck): typed events, iterators, asyncDispose${by}`, async () => {
    assert.match(version(pkg), pkg === 'typescript-5.0' ? /^5\.0\./ : /^\d+\.\d+\./);
    const r = await tsc(pkg, project);
    assert.equal(r.code, 0, r.out);
  });
}
