#!/usr/bin/env node
// The repository's `prepare` hook (run by `npm ci` / `npm install` in a clone, never by a consumer
// installing the package, which uses the shipped prebuilt or `npx medgym build`): builds the native
// addon with cmake-js, falling back to node-gyp when CMake is missing. A failed build does not fail
// the install (the environment and tools work without the addon); loading the addon later throws an
// error that says what to install and run.
// Set MEDGYM_REQUIRE_NATIVE=1 (as CI does) to make a failed build fail the install.
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
const has = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;

if (process.env.MEDGYM_SKIP_NATIVE === '1') {
  console.log('medgym: MEDGYM_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}

let ok = false;
if (has('cmake')) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  ok = run(process.execPath, [cmakeJs, 'compile', '--config', 'Release']).status === 0;
} else {
  // npm puts its bundled node-gyp on PATH for run-scripts.
  console.log('medgym: cmake not found, building the addon with node-gyp instead');
  ok = run('npm', ['run', 'build:native:gyp']).status === 0;
}

if (!ok) {
  const msg =
    'medgym: the native addon failed to build. Install a C++17 compiler and CMake ' +
    '(Debian/Ubuntu: apt-get install g++ cmake), then run `npm run build:native` in ' + root + '.';
  if (process.env.MEDGYM_REQUIRE_NATIVE === '1') {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
}
