// `medgym build [--cuda]`: compiles the addon from the sources shipped in the package, with cmake-js,
// into <package>/build/Release/medgym.node, which the loader tries before the CPU prebuilt. Without
// --cuda the build is CPU only (MEDGYM_NO_CUDA), whatever compilers are present; with --cuda it needs
// nvcc, and the result is probed in a child process before it is reported usable.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export interface BuildFlags {
  cuda?: boolean;
  debug?: boolean;
  jobs?: string;
  /** CUDA architectures, e.g. "90" or "native" (default: the CMakeLists' "80;90"). */
  cudaArch?: string;
}

const has = (cmd: string, args = ['--version']): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

function resolveFromPackage(id: string): string | undefined {
  try {
    return require.resolve(id, { paths: [PACKAGE_ROOT] });
  } catch {
    return undefined;
  }
}

/** What is missing for a source build, as lines the user can act on (empty when nothing is). */
export function missingForBuild(cuda: boolean): string[] {
  const missing: string[] = [];
  if (!has('cmake')) missing.push('CMake >= 3.18 (Debian/Ubuntu: apt-get install cmake)');
  if (!has('c++') && !has('g++') && !has('clang++')) missing.push('a C++17 compiler (Debian/Ubuntu: apt-get install g++)');
  if (!resolveFromPackage('cmake-js/bin/cmake-js')) missing.push('cmake-js (npm install --save-dev cmake-js@^8)');
  if (!resolveFromPackage('node-addon-api')) missing.push('node-addon-api (npm install --save-dev node-addon-api@^8)');
  if (cuda && !has('nvcc') && !fs.existsSync('/usr/local/cuda/bin/nvcc')) missing.push('nvcc, the CUDA toolkit (--cuda)');
  return missing;
}

export function buildCommand(flags: BuildFlags): number {
  const cuda = Boolean(flags.cuda);
  const missing = missingForBuild(cuda);
  if (missing.length) {
    console.error(`medgym build: missing ${missing.join('; ')}`);
    return 1;
  }
  const jobs = flags.jobs ?? String(require('os').availableParallelism?.() ?? 2);
  if (!/^[1-9][0-9]*$/.test(jobs)) throw new RangeError(`Expected a positive integer for --jobs but received ${JSON.stringify(flags.jobs)}`);
  const config = flags.debug ? 'Debug' : 'Release';
  const args = [resolveFromPackage('cmake-js/bin/cmake-js')!, 'compile', '--config', config, '--parallel', jobs];
  if (!cuda) args.push('--CDMEDGYM_NO_CUDA=ON');
  else {
    if (!has('nvcc') && fs.existsSync('/usr/local/cuda/bin/nvcc')) args.push('--CDCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc');
    if (flags.cudaArch) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${flags.cudaArch}`);
  }
  console.log(`medgym build: ${cuda ? 'CPU + CUDA' : 'CPU only'}, ${config}, ${jobs} jobs, in ${PACKAGE_ROOT}`);
  const t0 = Date.now();
  const res = spawnSync(process.execPath, args, { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  if (res.status !== 0) {
    console.error(`medgym build: cmake-js failed (exit ${res.status ?? res.signal})`);
    return 1;
  }
  const file = path.join(PACKAGE_ROOT, 'build', config, 'medgym.node');
  // Load it in a child process: a broken CUDA runtime fails there, not in a later caller.
  const probe = spawnSync(process.execPath, ['-p', `JSON.stringify(require(${JSON.stringify(file)}).info())`], { encoding: 'utf8', timeout: 30000 });
  if (probe.status !== 0) {
    console.error(`medgym build: built ${file} but it does not load: ${(probe.stderr || String(probe.error)).trim().split('\n')[0]}`);
    return 1;
  }
  const info = JSON.parse(probe.stdout) as { simd: string; cudaCompiled: boolean; cudaDevices: { name: string }[]; cudaUnavailableReason?: string };
  const gpu = info.cudaCompiled
    ? info.cudaDevices.length
      ? `CUDA compiled, devices: ${info.cudaDevices.map((d) => d.name).join(', ')}`
      : `CUDA compiled, no usable device (${info.cudaUnavailableReason ?? 'none found'})`
    : 'CPU only';
  console.log(`medgym build: ${file} in ${((Date.now() - t0) / 1000).toFixed(0)} s (${info.simd} path, ${gpu}); it is used before the prebuilt`);
  return 0;
}
