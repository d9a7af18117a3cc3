// The CLI's entry: main() checks a command line and runs its command; run() wires main() to this process.

import { once } from 'node:events';
import { type Parsed, parseArgv, UsageError } from './args.js';
import { COMMANDS } from './commands.js';
import { EXIT, KeyNotFound, type Lib } from './context.js';
import { helpText, usageLine, version } from './help.js';

export interface Io {
  /** prints a line; a promise when the output is full (wait for it before writing more) */
  out: (s: string) => void | Promise<void>;
  err: (s: string) => void;
  signal: AbortSignal;
}

/** Runs one command line; returns the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let p: Parsed;
  let json = argv.includes('--json');
  const fail = (code: number, errCode: string, message: string): number => {
    if (json) io.err(JSON.stringify({ error: { code: errCode, message } }));
    else io.err(`ultradict: ${message}`);
    return code;
  };
  try {
    p = parseArgv(argv);
  } catch (e) {
    return fail(EXIT.usage, 'USAGE', `${(e as Error).message}\n${json ? '' : 'Run "ultradict --help" for usage.'}`.trim());
  }
  json = p.flags.has('json');
  const [command, ...args] = p.positionals;
  if (p.flags.has('version')) {
    io.out(version());
    return EXIT.ok;
  }
  if (command === undefined || command === 'help') {
    if (command === 'help' && args[0] !== undefined && !Object.hasOwn(COMMANDS, args[0])) {
      return fail(EXIT.usage, 'USAGE', `unknown command ${JSON.stringify(args[0])}`);
    }
    io.out(helpText(args[0]).trimEnd());
    return command === undefined && !p.flags.has('help') ? EXIT.usage : EXIT.ok;
  }
  if (!Object.hasOwn(COMMANDS, command)) {
    return fail(EXIT.usage, 'USAGE', `unknown command ${JSON.stringify(command)}; run "ultradict --help" for the list`);
  }
  const cmd = COMMANDS[command]!;
  if (p.flags.has('help')) {
    io.out(helpText(command).trimEnd());
    return EXIT.ok;
  }
  // --help, --version and --json are global: every command takes them
  const given = [...p.flags, ...p.values.keys()].filter((o) => o !== 'version' && o !== 'json');
  const wrong = given.find((o) => !cmd.options.includes(o));
  if (wrong !== undefined) return fail(EXIT.usage, 'USAGE', `${command} does not take --${wrong}; run "ultradict ${command} --help"`);
  if (json && p.flags.has('raw')) return fail(EXIT.usage, 'USAGE', '--raw and --json exclude each other');
  if (args.length < cmd.args.length) {
    const missing = cmd.args.slice(args.length).join(' ');
    return fail(EXIT.usage, 'USAGE', `${command} needs ${cmd.args.join(' ')}: ${missing} missing; usage: ${usageLine(command)}`);
  }
  if (args.length > cmd.args.length) {
    const extra = args.slice(cmd.args.length).map((a) => JSON.stringify(a)).join(' ');
    const hint = command === 'set' ? ' (quote a VALUE that has spaces: \'{"a": 1}\')' : '';
    return fail(
      EXIT.usage,
      'USAGE',
      `too many arguments: ${command} takes ${cmd.args.length ? cmd.args.join(' ') : 'no arguments'}, and ${extra} ${args.length - cmd.args.length === 1 ? 'is' : 'are'} left over${hint}; usage: ${usageLine(command)}`,
    );
  }
  let lib: Lib;
  try {
    lib = await import('../index.js');
  } catch (e) {
    return fail(EXIT.error, (e as { code?: string }).code ?? 'ERROR', (e as Error).message);
  }
  try {
    if (cmd.args[0] === 'NAME') {
      // names are checked before anything touches shared memory
      try {
        lib.UltraDict.exists(args[0]!);
      } catch (e) {
        if (e instanceof lib.InvalidNameError) throw new UsageError(e.message);
        throw e;
      }
    }
    return await cmd.run({ lib, args, p, json, out: io.out, err: io.err, signal: io.signal });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const c = typeof code === 'string' ? code : 'ERROR';
    const message = (e as Error).message ?? String(e);
    if (e instanceof UsageError) return fail(EXIT.usage, 'USAGE', message);
    if (e instanceof KeyNotFound || e instanceof lib.NotFoundError) return fail(EXIT.notFound, c, message);
    return fail(EXIT.error, c, message);
  }
}

/** Runs the command line of this process: stdout and stderr, Ctrl-C and SIGTERM, the exit code. */
export async function run(): Promise<void> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok); // `ultradict dump x | head`
    throw e;
  });
  const code = await main(process.argv.slice(2), {
    out: (s) => (process.stdout.write(s + '\n') ? undefined : once(process.stdout, 'drain').then(() => undefined)),
    err: (s) => process.stderr.write(s + '\n'),
    signal: ac.signal,
  });
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.exitCode = code;
}
