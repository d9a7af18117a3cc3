// Job host: runs one job (one workload x one contender) in its own process group, forks the workers
// it needs, and for the "manager" contender is the manager itself: it holds the Map and answers the
// workers' IPC requests.
import { fileURLToPath } from 'node:url';
import { forkChild, rssAfterGc, serve, type Child } from '../lib/proc.js';
import { ManagerServer } from '../contenders/manager.js';
import type { HostContext, Job, WorkloadHost } from '../workloads/common.js';
import * as single from '../workloads/single.js';
import * as multi from '../workloads/multi.js';
import * as propagation from '../workloads/propagation.js';
import * as growth from '../workloads/growth.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

const HOSTS: Record<Job['workload'], WorkloadHost> = {
  w1: single,
  w2: single,
  w3: multi,
  w4: propagation,
  w5: growth,
};

async function run(job: Job): Promise<unknown> {
  const children: Child[] = [];
  const listeners: ((child: Child, message: unknown) => void)[] = [];
  const manager = job.contender === 'manager' ? new ManagerServer(rssAfterGc) : null;
  const ctx: HostContext = {
    job,
    fork() {
      const child = forkChild(WORKER, {
        defaultTimeoutMs: job.quick ? 60_000 : 300_000,
        onMessage(c, message) {
          if (manager && manager.handle(message, (r) => c.send(r))) return;
          for (const l of listeners) l(c, message);
        },
      });
      children.push(child);
      return child;
    },
    onMessage(listener) {
      listeners.push(listener);
    },
    hostRss: rssAfterGc,
  };
  try {
    return await HOSTS[job.workload].host(ctx);
  } finally {
    for (const c of children) c.kill();
    await Promise.all(children.map((c) => c.exited));
  }
}

serve({
  run: (job: Job) => run(job),
  exit: () => setImmediate(() => process.exit(0)),
} as Record<string, (args: never) => unknown>);
