// Benchmark the kernels from a harness: run `medgym bench-kernels --json` (the package's own command)
// and read its JSON, one row per kernel: name, shape, median ms, GFLOP/s or GB/s.
//   node examples/bench-kernels.mjs
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const pkg = require.resolve('medgym/package.json');
const cli = path.join(path.dirname(pkg), require(pkg).bin.medgym);
const report = JSON.parse(execFileSync(process.execPath, [cli, 'bench-kernels', '--json', '--min-time', '100'], { encoding: 'utf8' }));
console.log(`medgym ${report.medgym}: ${report.simd} path, ${report.threads} threads`);
for (const r of report.bench) {
  const rate = r.gflops !== null ? `${r.gflops} GFLOP/s` : `${r.gbps} GB/s`;
  console.log(`  ${r.name.padEnd(20)} ${r.shape.padEnd(30)} ${r.ms.toFixed(3).padStart(8)} ms  ${rate}`);
}
