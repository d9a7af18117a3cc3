// Facts about the machine and the software measured, for the report header.
import os from 'node:os';
import { readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramGiB: number;
  node: string;
  v8: string;
  os: string;
  date: string;
  loadAvg: number[];
  versions: Record<string, string>;
}

function cpuModel(): string {
  const fromOs = os.cpus()[0]?.model?.trim();
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    const mhz = /^cpu MHz\s*:\s*([\d.]+)$/m.exec(info);
    const name = (m?.[1] ?? fromOs ?? 'unknown').trim();
    return mhz ? `${name} (${Math.round(Number(mhz[1]))} MHz)` : name;
  } catch {
    return fromOs ?? 'unknown';
  }
}

function pkgVersion(root: string, name: string): string {
  try {
    const p = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return p.version ?? '?';
  } catch {
    return 'not installed';
  }
}

function binVersion(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? out.split('\n')[0]!.trim();
  } catch {
    return 'not installed';
  }
}

export function osRelease(): string {
  try {
    if (existsSync('/etc/os-release')) {
      const m = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
      if (m) return `${m[1]}, kernel ${os.release()}`;
    }
  } catch {
    /* fall through */
  }
  return `${os.type()} ${os.release()}`;
}

export function machineInfo(root: string): MachineInfo {
  return {
    cpuModel: cpuModel(),
    cores: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    v8: process.versions.v8,
    os: osRelease(),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    versions: {
      ultradict: pkgVersionOfRoot(root),
      msgpackr: pkgVersion(root, 'msgpackr'),
      ioredis: pkgVersion(root, 'ioredis'),
      memjs: pkgVersion(root, 'memjs'),
      lmdb: pkgVersion(root, 'lmdb'),
      'better-sqlite3': pkgVersion(root, 'better-sqlite3'),
      'redis-server': binVersion('redis-server', ['--version'], /v=(\S+)/),
      memcached: binVersion('memcached', ['-V'], /memcached (\S+)/),
    },
  };
}

function pkgVersionOfRoot(root: string): string {
  try {
    const p = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string };
    let rev = '';
    try {
      rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      rev = 'uncommitted';
    }
    return `${p.version ?? '?'} (${rev})`;
  } catch {
    return '?';
  }
}
