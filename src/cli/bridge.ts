// The CLI's bridge command: runs a Redis bridge for a dict until Ctrl-C (ioredis is loaded only here).

import { once } from 'node:events';
import { msOption, UsageError } from './args.js';
import { type Ctx, EXIT } from './context.js';
import { time } from './format.js';

/**
 * Runs a bridge until SIGINT/SIGTERM: local writes go to the Redis stream, remote ones into the
 * local dict. Prints one "ready" line on stdout once both directions run; events go to stderr.
 */
export async function cmdBridge(ctx: Ctx): Promise<number> {
  const [name, url] = ctx.args as [string, string];
  if (!/^rediss?:\/\/[^/]/.test(url)) throw new UsageError(`URL must look like redis://host:port, not ${JSON.stringify(url)}`);
  const { Bridge } = await import('../redis/index.js');
  const { describeTarget } = await import('../redis/protocol.js');
  const log = (type: string, message: string): void =>
    ctx.err(ctx.json ? JSON.stringify({ time: new Date().toISOString(), type, message }) : `${time()}  ${type.padEnd(7)}  ${message}`);
  const connectTimeout = msOption(ctx.p, 'connect-timeout');
  const b = await Bridge.start({
    name,
    redis: url,
    stream: ctx.p.values.get('stream'),
    id: ctx.p.values.get('id'),
    prefix: ctx.p.values.get('prefix'),
    ...(connectTimeout === undefined ? {} : { connectTimeout }),
  });
  b.on('error', (e: Error) => log('error', e.message));
  b.on('warning', (e: Error) => log('warning', e.message));
  b.on('offline', () => log('offline', 'Redis connection lost; local writes are queued and sent on reconnect'));
  b.on('online', () => log('online', 'Redis connection back'));
  const s = b.stats();
  await ctx.out(ctx.json ? JSON.stringify({ type: 'ready', name, stream: b.stream, origin: b.origin, keys: b.dict.size, lastId: s.lastId }) : `ready: ${name} <-> ${describeTarget(url)} stream ${b.stream} as ${b.origin} (${b.dict.size} keys)`);
  if (!ctx.signal.aborted) await once(ctx.signal, 'abort');
  log('stop', 'forwarding what is left, then closing');
  await b.close();
  const st = b.stats();
  log(
    'stop',
    `closed: ${st.forwarded} local writes forwarded, ${st.applied} remote operations applied, ${st.resyncs} snapshot loads, ${st.gaps} local gaps, ` +
      `${st.recovered} keys recovered after a gap, ${st.lost} keys lost`,
  );
  return EXIT.ok;
}
