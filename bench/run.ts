// `npm run bench`: every benchmark in order (bench/*.bench.ts), or those named on the command line.
import * as fs from 'fs';
import * as path from 'path';
import { machineLine, torchAvailable, TORCH_HINT } from './harness';

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
    .sort();
  console.log(`# medgym benchmarks — ${machineLine()}`);
  if (!torchAvailable()) console.log(TORCH_HINT);
  for (const f of files) {
    const mod = (await import(path.join(__dirname, f))) as { run: () => Promise<void> };
    await mod.run();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
