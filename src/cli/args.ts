// The CLI's options and their parsing: the option table, argv split into flags, values and positionals, typed option values.

/** A wrong command line: exit code 2 (EXIT.usage). */
export class UsageError extends Error {}

interface OptionSpec {
  short?: string;
  value?: string; // name of the value if the option takes one
  help: string;
}

export const OPTIONS: Record<string, OptionSpec> = {
  json: { help: 'machine-readable output (JSON)' },
  help: { short: 'h', help: 'show help' },
  version: { help: 'print the version' },
  'number-key': { short: 'n', help: 'KEY is a number key (keys are strings by default: 1 and "1" differ)' },
  string: { short: 's', help: 'store VALUE as a plain string instead of parsing it as JSON' },
  raw: { short: 'r', help: 'print a string value without JSON quotes' },
  entries: { help: 'print [key, value] pairs (keeps number keys apart from string keys)' },
  force: { short: 'f', help: 'remove even if live processes are attached' },
  'lock-timeout': { value: 'MS', help: 'longest wait for the dict lock (default 10000)' },
  owner: { value: 'UID', help: "attach to a dict owned by this uid, or by anyone with 'any' (default: only your own)" },
  ttl: { value: 'MS', help: 'time to live of the key in ms (0: no expiry; default: the dict\'s ttl option)' },
  grace: { value: 'MS', help: 'leave segments younger than this alone (default 2000)' },
  all: { short: 'a', help: 'also remove dicts that every process closed cleanly (kept with autoUnlink: false)' },
  stream: { value: 'NAME', help: 'name of the replicated dict in Redis (default: the local NAME)' },
  id: { value: 'ID', help: "this host's bridge id (default: the host name); keep it stable across restarts" },
  prefix: { value: 'PREFIX', help: 'prefix of the Redis keys (default "ultradict:")' },
  'connect-timeout': { value: 'MS', help: 'longest wait for the first connection to Redis (default 5000)' },
};

export interface Parsed {
  positionals: string[];
  flags: Set<string>;
  values: Map<string, string>;
}

/**
 * Splits argv into options and positionals. Unlike util.parseArgs, a negative number (`-5`) or a lone
 * `-` (stdin) is a positional, so `ultradict set n k -5` works; `--` ends the options.
 */
export function parseArgv(argv: readonly string[]): Parsed {
  const out: Parsed = { positionals: [], flags: new Set(), values: new Map() };
  const byShort = new Map(Object.entries(OPTIONS).flatMap(([k, o]) => (o.short ? [[o.short, k] as const] : [])));
  const take = (name: string, inline: string | undefined, i: number): number => {
    const spec = OPTIONS[name];
    if (spec === undefined) throw new UsageError(`unknown option --${name}`);
    if (spec.value === undefined) {
      if (inline !== undefined) throw new UsageError(`option --${name} takes no value`);
      out.flags.add(name);
      return i;
    }
    const v = inline ?? argv[i + 1];
    if (v === undefined) throw new UsageError(`option --${name} needs a value (${spec.value})`);
    out.values.set(name, v);
    return inline === undefined ? i + 1 : i;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      i = take(eq < 0 ? a.slice(2) : a.slice(2, eq), eq < 0 ? undefined : a.slice(eq + 1), i);
    } else if (a.length > 1 && a.startsWith('-') && !/^-[\d.]/.test(a)) {
      for (const ch of a.slice(1)) {
        const name = byShort.get(ch);
        if (name === undefined) throw new UsageError(`unknown option -${ch}`);
        i = take(name, undefined, i);
      }
    } else {
      out.positionals.push(a);
    }
  }
  return out;
}

/** The value of an option in ms (a number >= 0), or undefined if not given. */
export function msOption(p: Parsed, name: string): number | undefined {
  const v = p.values.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n >= 0) || v.trim() === '') throw new UsageError(`--${name} must be a number of ms >= 0, got ${JSON.stringify(v)}`);
  return n;
}

export function lockTimeout(p: Parsed): number | undefined {
  return msOption(p, 'lock-timeout');
}

export function owner(p: Parsed): number | 'any' | undefined {
  const v = p.values.get('owner');
  if (v === undefined || v === 'any') return v;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw new UsageError(`--owner must be a uid or 'any', got ${JSON.stringify(v)}`);
  return Number(v);
}
