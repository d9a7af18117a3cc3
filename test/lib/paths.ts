// Where the tests find the checkout and its built CLI (the compiled tests run from out/test/).

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (out/test/lib/ is three levels below it). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The built CLI (`npm test` builds dist/ first). */
export const CLI = join(ROOT, 'dist', 'cli.js');
