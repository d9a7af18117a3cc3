// The CLI's help and version texts: usage lines, option lists, exit codes, the package version.

import { readFileSync } from 'node:fs';
import { OPTIONS } from './args.js';
import { COMMANDS } from './commands.js';

export function usageLine(name: string): string {
  const c = COMMANDS[name]!;
  return `ultradict ${name}${c.args.map((a) => ` ${a}`).join('')}${c.options.filter((o) => o !== 'help').length ? ' [options]' : ''}`;
}

function optionLines(names: string[]): string {
  const rows = names.map((n) => {
    const o = OPTIONS[n]!;
    return [`${o.short ? `-${o.short}, ` : '    '}--${n}${o.value ? ` ${o.value}` : ''}`, o.help] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}

const EXIT_HELP = `Exit codes:
  0  success
  1  error (lock timeout, dict in use, corrupt segment, ...)
  2  usage error (unknown command or option, bad arguments, invalid name, VALUE not JSON)
  3  not found (no such dict, or no such key)`;

export function helpText(command?: string): string {
  if (command !== undefined && Object.hasOwn(COMMANDS, command)) {
    const c = COMMANDS[command]!;
    return `Usage: ${usageLine(command)}\n\n${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.\n${c.details}\n\nOptions:\n${optionLines(c.options)}\n\n${EXIT_HELP}\n`;
  }
  const w = Math.max(...Object.keys(COMMANDS).map((n) => usageLine(n).length));
  return `Usage: ultradict COMMAND [ARGS] [options]

Operate the ultradict dicts (shared-memory Maps) of this machine.

Commands:
${Object.keys(COMMANDS)
  .map((n) => `  ${usageLine(n).padEnd(w)}  ${COMMANDS[n]!.summary}`)
  .join('\n')}
  ultradict help [COMMAND]

Options:
${optionLines(['help', 'version', 'json'])}

Run "ultradict COMMAND --help" for the options of a command.
KEY is a string unless --number-key is given. The CLI attaches to existing dicts only (bridge creates
its dict if missing) and never removes one when it detaches (only rm and gc remove).

${EXIT_HELP}
`;
}

export function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
