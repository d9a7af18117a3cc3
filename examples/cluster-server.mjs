// Example: a cluster HTTP server whose worker processes share a hit counter and a rate limiter through ultradict.
//
//   npm run build && node examples/cluster-server.mjs
//   curl -i http://127.0.0.1:8080/            200, or 429 once this client is over its limit
//   curl http://127.0.0.1:8080/stats          the shared counters, the same whichever worker answers
//   npx ultradict watch <name>                 (in another terminal) every hit, live
//
// Environment: PORT (8080; 0 = any free port), HOST (127.0.0.1), WORKERS (one per core), RATE_LIMIT
// (requests per client per window, 10), RATE_WINDOW_MS (1000). A client is its x-client-id header, or
// its address. A worker that dies is replaced. Ctrl-C (or SIGTERM) stops the workers, and the primary
// removes the dict when it exits.
import cluster from 'node:cluster';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { UltraDict } from 'ultradict';

const PORT = Number(process.env.PORT ?? 8080);
const HOST = process.env.HOST ?? '127.0.0.1';
const WORKERS = Number(process.env.WORKERS ?? availableParallelism());
const RATE_LIMIT = Number(process.env.RATE_LIMIT ?? 10);
const RATE_WINDOW_MS = Number(process.env.RATE_WINDOW_MS ?? 1000);

if (cluster.isPrimary) {
  // the primary creates the dict; the workers attach to it by name
  const name = `cluster_example_${process.pid}`;
  const shared = new UltraDict({ hits: 0, limited: 0 }, { name });
  for (let i = 0; i < WORKERS; i++) cluster.fork({ ULTRADICT_NAME: name });

  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    if (++listening === WORKERS) console.log(`listening on http://${HOST}:${address.port} with ${WORKERS} workers; dict "${name}"`);
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      // a crashed worker is replaced; the dict lives in the primary, so nothing is lost
      console.log(`worker ${worker.id} died (${signal ?? code}); starting another`);
      cluster.fork({ ULTRADICT_NAME: name });
      return;
    }
    if (Object.keys(cluster.workers ?? {}).length > 0) return;
    console.log(`all workers stopped: ${shared.get('hits')} hits, ${shared.get('limited')} rate-limited`);
    shared.close(); // the creator's close removes the dict from /dev/shm
  });
} else {
  const shared = new UltraDict({ name: process.env.ULTRADICT_NAME, create: false });
  const me = `worker:${cluster.worker.id}`;

  /**
   * Fixed-window rate limit: at most RATE_LIMIT requests per client per window, across all workers. The
   * window is a counter with a time to live: the first request of a window creates it with
   * { ttl: RATE_WINDOW_MS }, the next ones increment it (increment keeps its expiry), and when the window
   * ends the counter expires in every worker: nothing to reset, and idle clients leave nothing behind.
   */
  function allow(client) {
    const key = `rate:${client}`;
    return shared.transaction(() => {
      const n = shared.get(key) ?? 0;
      if (n >= RATE_LIMIT) return false;
      if (n === 0) shared.set(key, 1, { ttl: RATE_WINDOW_MS });
      else shared.increment(key);
      return true;
    });
  }

  const server = http.createServer((req, res) => {
    if (req.url === '/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(shared));
      return;
    }
    shared.increment('hits');
    shared.increment(me);
    const client = req.headers['x-client-id'] ?? req.socket.remoteAddress;
    if (!allow(client)) {
      shared.increment('limited');
      res.statusCode = 429;
      res.end('too many requests\n');
      return;
    }
    res.end(`hello from ${me} (pid ${process.pid})\n`);
  });
  server.listen(PORT, HOST);
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0)); // exiting closes the dict handle (it does not remove the dict)
    server.closeAllConnections();
  });
  process.on('SIGINT', () => {}); // Ctrl-C reaches the whole group: the primary stops the workers
}
