// Keyv's own API-compliance suite (@keyv/test-suite, on Vitest) against ultradict/keyv, all on one shared dict.

import * as vitest from 'vitest';
import Keyv from 'keyv';
import keyvTestSuite from '@keyv/test-suite';
import { UltraDict } from '../../src/index.js';
import { KeyvUltraDict } from '../../src/keyv/index.js';
import { uniqueName } from '../lib/helpers.js';

const dict = new UltraDict<unknown>({ name: uniqueName('keyv_suite') });
vitest.afterAll(() => dict.close());

keyvTestSuite(vitest, Keyv, () => new KeyvUltraDict(dict));
