#!/usr/bin/env node
// medgym command line: flags in, one call out.
import { Command } from 'commander';
import { doctor } from './doctor';
import { listEnvs } from '../env/registry';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

const program = new Command();
program.name('medgym').description('Train vision-language policies that think with medical images.').version(version);

program
  .command('doctor')
  .description('print what this installation can do: native addon, CPU features, threads, CUDA, sharp')
  .action(() => {
    const report = doctor();
    for (const line of report.lines) console.log(line);
    process.exitCode = report.ok ? 0 : 1;
  });

program
  .command('envs')
  .description('list the registered environment ids')
  .option('--json', 'print the specs as JSON')
  .action((opts: { json?: boolean }) => {
    const specs = listEnvs();
    if (opts.json) console.log(JSON.stringify(specs, null, 2));
    else for (const s of specs) console.log(`${s.id.padEnd(26)} ${s.description}`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
