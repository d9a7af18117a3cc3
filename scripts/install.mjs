// The package's install script: on Linux, load the prebuilt addon or build it from source (node-gyp-build);
// on any other OS, print a one-line notice and succeed, so that apps depending on ultradict install there.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

// ULTRADICT_TEST_PLATFORM: set only by the tests, to exercise the unsupported-platform path on Linux
const platform = process.env.ULTRADICT_TEST_PLATFORM || `${process.platform}-${process.arch}`;
if (!platform.startsWith('linux-')) {
  console.log(`ultradict: ${platform} is not supported (linux-x64 and linux-arm64 are); installed without the native addon, new UltraDict() will throw UnsupportedPlatformError`);
  process.exit(0);
}
const bin = createRequire(import.meta.url).resolve('node-gyp-build/bin.js');
const r = spawnSync(process.execPath, [bin], { stdio: 'inherit' });
process.exit(r.status ?? 1);
