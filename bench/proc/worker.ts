// A measuring process: opens one contender and runs what its job host asks for.
import { serve } from '../lib/proc.js';
import { closeStore } from '../workloads/common.js';
import { workerFns as single } from '../workloads/single.js';
import { workerFns as multi } from '../workloads/multi.js';
import { workerFns as propagation } from '../workloads/propagation.js';
import { workerFns as growth } from '../workloads/growth.js';

serve({
  ...single,
  ...multi,
  ...propagation,
  ...growth,
  exit: async () => {
    await closeStore().catch(() => undefined);
    setImmediate(() => process.exit(0));
  },
} as Record<string, (args: never) => unknown>);
