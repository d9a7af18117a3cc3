// A cache shared by a cluster: 4 workers look up the same 20 "products" at once through fetch(); the
// slow upstream call (the loader) runs once per product on the whole machine, not once per worker.
// Run: node examples/cluster-cache.mjs   (WORKERS, PRODUCTS to change the sizes)
import cluster from 'node:cluster';
import { setTimeout as sleep } from 'node:timers/promises';
import { UltraDict } from 'ultradict';

const WORKERS = Number(process.env.WORKERS ?? 4);
const PRODUCTS = Number(process.env.PRODUCTS ?? 20);

if (cluster.isPrimary) {
  const name = `cache_example_${process.pid}`;
  const cache = new UltraDict({ name });
  const workers = Array.from({ length: WORKERS }, () => cluster.fork({ CACHE_NAME: name }));
  const codes = await Promise.all(workers.map((w) => new Promise((resolve) => w.on('exit', resolve))));
  const calls = cache.get('upstream calls') ?? 0;
  const served = Array.from({ length: WORKERS }, (_, i) => cache.get(`served by ${i + 1}`) ?? 0);
  console.log(`${WORKERS} workers served ${served.reduce((a, b) => a + b, 0)} lookups of ${PRODUCTS} products (per worker: ${served.join(' / ')})`);
  console.log(`upstream calls: ${calls} (one per product; without the shared fetch: up to ${WORKERS * PRODUCTS})`);
  cache.close();
  process.exit(calls === PRODUCTS && codes.every((c) => c === 0) ? 0 : 1);
} else {
  const cache = new UltraDict({ name: process.env.CACHE_NAME, create: false });
  // the expensive upstream call: 50 ms, counted in the dict so the primary can report it
  const upstream = async (id) => {
    cache.increment('upstream calls');
    await sleep(50);
    return { id, price: (id * 7) % 100 };
  };
  const ids = Array.from({ length: PRODUCTS }, (_, i) => i + 1);
  const products = await Promise.all(ids.map((id) => cache.fetch(`product:${id}`, () => upstream(id))));
  cache.increment(`served by ${cluster.worker.id}`, products.length);
  cache.close();
  process.exit(0);
}
