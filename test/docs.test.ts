// Runs every JavaScript example of README.md and docs/*.md (and checks the CLI help and relative links there), so none rots.
//
// A ```js block runs as an ES module (```cjs as CommonJS) in its own node process, from out/docs/<pid>/ so that
// `import 'ultradict'` resolves to this package, with a private empty /dev/shm where possible (as on a
// fresh machine: other tests' dicts and gc() calls cannot interfere). It must exit with 0. Lines ending in `// → text` state
// what the block prints: then its output must be exactly those lines, in order. A block preceded by
// `<!-- not-run: reason -->` is skipped (say why). Blocks that use ultradict/redis get REDIS_URL, a
// redis-server started for them.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { scaled } from './lib/helpers.js';
import { CLI, ROOT as root } from './lib/paths.js';
import { withPrivateShm } from './lib/private-shm.js';
import { RedisServer, redisSkip } from './lib/redis-server.js';

const outDir = join(root, 'out', 'docs', String(process.pid));
const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

interface Block {
  file: string;
  line: number;
  lang: string;
  code: string;
  before: string;
}

function blocks(file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let b = start - 1;
    while (b >= 0 && lines[b]!.trim() === '') b--;
    out.push({ file, line: start + 1, lang: open[1]!, code: body.join('\n'), before: b >= 0 ? lines[b]! : '' });
  }
  return out;
}

function run(cmd: string, args: string[], timeout = 60_000, env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: root, timeout: scaled(timeout), env: env ?? process.env }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

mkdirSync(outDir, { recursive: true });
let redis: Promise<RedisServer> | null = null;
after(async () => {
  rmSync(outDir, { recursive: true, force: true });
  if (redis !== null) await (await redis).close();
});

for (const file of docs) {
  const runnable = blocks(file).filter((b) => ['js', 'javascript', 'mjs', 'cjs'].includes(b.lang));
  if (runnable.length === 0) continue;
  test(`the examples of ${file} run`, async (t) => {
    for (const b of runnable) {
      const skip = /<!--\s*not-run:\s*(.+?)\s*-->/.exec(b.before);
      await t.test(`${file}:${b.line}`, { skip: skip ? skip[1] : b.code.includes('ultradict/redis') ? redisSkip() : false }, async () => {
        const path = join(outDir, `${file.replace(/[/.]/g, '_')}_${b.line}.${b.lang === 'cjs' ? 'cjs' : 'mjs'}`);
        writeFileSync(path, b.code + '\n');
        let env: NodeJS.ProcessEnv | undefined;
        if (b.code.includes('ultradict/redis')) env = { ...process.env, REDIS_URL: (await (redis ??= RedisServer.start())).url };
        const r = await run(...withPrivateShm([process.execPath, path]), 60_000, env);
        assert.equal(r.code, 0, `${file}:${b.line} exited with ${r.code}\n${r.stdout}\n${r.stderr}`);
        const expected = b.code
          .split('\n')
          .map((l) => /\/\/ → (.*)$/.exec(l)?.[1])
          .filter((x): x is string => x !== undefined);
        if (expected.length > 0) assert.deepEqual(r.stdout.trimEnd().split('\n'), expected, `${file}:${b.line} printed`);
      });
    }
  });
}

test('the CLI help in docs/api.md is the real one', async () => {
  const block = blocks('docs/api.md').find((b) => b.before.includes('<!-- ultradict --help -->'));
  assert.ok(block, 'docs/api.md has the output of ultradict --help after <!-- ultradict --help -->');
  const r = await run(process.execPath, [CLI, '--help']);
  assert.equal(r.code, 0);
  assert.equal(block.code, r.stdout.trimEnd());
});

test('relative links of the docs point to files that exist', () => {
  for (const file of docs) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z]+:/.test(target)) continue;
      assert.ok(existsSync(join(root, dirname(file), target)), `${file} links to ${m[1]}, which does not exist`);
    }
  }
});
