#!/usr/bin/env node
// The `ultradict` executable (package.json "bin"): runs this process's command line; the CLI itself is in cli/.

import { run } from './cli/main.js';

await run();
