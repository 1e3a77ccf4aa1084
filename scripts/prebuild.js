#!/usr/bin/env node
// Builds the CPU prebuilt that the npm package ships: prebuilds/<platform>/medgym.node (e.g.
// prebuilds/linux-x64-glibc/). A separate cmake-js build in build/prebuild-<platform> with CUDA off
// (MEDGYM_NO_CUDA) and no -march flag (kernels pick their SIMD path at run time). Built on Debian 12
// (GCC 12) it needs glibc >= 2.32 and libstdc++ >= GLIBCXX_3.4.30; linking libstdc++ statically was
// tried and raises the glibc floor to the build machine's (2.36). Incremental after the first run.
// Run by `npm pack` (prepack) and by `npm test` before the package test; `--force` rebuilds.
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');

function platformTag() {
  let libc = '';
  if (process.platform === 'linux') libc = process.report.getReport().header.glibcVersionRuntime ? '-glibc' : '-musl';
  return `${process.platform}-${process.arch}${libc}`;
}

const tag = platformTag();
const outDir = path.join(root, 'build', `prebuild-${tag}`);
const dest = path.join(root, 'prebuilds', tag);
if (process.argv.includes('--force')) fs.rmSync(outDir, { recursive: true, force: true });

const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
const jobs = String(Number(process.env.MEDGYM_BUILD_JOBS) || require('os').availableParallelism?.() || 2);
const args = [cmakeJs, 'compile', '--config', 'Release', '--out', outDir, '--parallel', jobs, '--CDMEDGYM_NO_CUDA=ON'];
const t0 = Date.now();
const log = path.join(root, 'build', `prebuild-${tag}.log`);
fs.mkdirSync(path.dirname(log), { recursive: true });
const res = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
fs.writeFileSync(log, `${res.stdout}\n${res.stderr}`);
if (res.status !== 0) {
  process.stderr.write(`${res.stdout}\n${res.stderr}`.split('\n').slice(-40).join('\n'));
  console.error(`medgym prebuild: the CPU build failed (full log: ${log})`);
  process.exit(1);
}

const built = path.join(outDir, 'Release', 'medgym.node');
// Check it in a child process: it must load here and have no CUDA compiled in.
const probe = spawnSync(process.execPath, ['-p', `JSON.stringify(require(${JSON.stringify(built)}).info())`], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.error(`medgym prebuild: ${built} does not load: ${probe.stderr.trim()}`);
  process.exit(1);
}
const info = JSON.parse(probe.stdout);
if (info.cudaCompiled) {
  console.error('medgym prebuild: the CPU prebuilt has CUDA compiled in (MEDGYM_NO_CUDA ignored?)');
  process.exit(1);
}
// The newest glibc and libstdc++ symbol versions it needs, read from the binary's version strings.
const bytes = fs.readFileSync(built).toString('latin1');
const newest = (re) => [...new Set(bytes.match(re) ?? [])].sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).pop();
const glibc = [newest(/GLIBC_2\.\d+/g), newest(/GLIBCXX_3\.4\.\d+/g)].filter(Boolean).join(', ');

fs.mkdirSync(dest, { recursive: true });
fs.copyFileSync(built, path.join(dest, 'medgym.node'));
fs.writeFileSync(
  path.join(dest, 'build-info.json'),
  JSON.stringify({ platform: tag, napiVersion: info.napiVersion, compiler: info.compiler, cuda: false, needs: glibc || null, builtWith: `node ${process.version}` }, null, 2) + '\n',
);
// The binary is a build output: never committed, always packed.
fs.writeFileSync(path.join(root, 'prebuilds', '.gitignore'), '*\n');
fs.writeFileSync(path.join(root, 'prebuilds', '.npmignore'), '.gitignore\n');
const size = (fs.statSync(built).size / 1e6).toFixed(2);
console.log(`medgym prebuild: prebuilds/${tag}/medgym.node (${size} MB, CPU only, needs ${glibc || 'no versioned glibc'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
