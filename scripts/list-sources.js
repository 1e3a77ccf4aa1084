#!/usr/bin/env node
// Prints the native sources binding.gyp compiles (CMakeLists.txt globs the same folders), so that
// adding a kernel file never means editing two build files.
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
for (const dir of ['native/cpu', 'native/model', 'native/model/qwen', 'native/addon']) {
  for (const f of fs.readdirSync(path.join(root, dir)).sort()) {
    if (f.endsWith('.cc')) process.stdout.write(`${dir}/${f}\n`);
  }
}
