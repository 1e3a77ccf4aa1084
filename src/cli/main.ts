#!/usr/bin/env node
// medgym command line: flags in, one call out.
import { Command } from 'commander';
import { doctor } from './doctor';
import { dataCheckCommand, DATA_KINDS_HELP, type DataCheckFlags } from './data';
import { listEnvs } from '../env/registry';
import { trainCommand, type TrainFlags } from './train';
import { evalAnyCommand, type EvalAnyFlags } from './eval_model';
import { serveEnvCommand, type ServeEnvFlags } from './serve_env';
import { serveCommand, type ServeFlags } from './serve';
import { writeReport, writeMatrix } from '../report';
import { buildCommand, type BuildFlags } from './build';
import { benchKernelsCommand, type BenchKernelsFlags } from './bench_kernels';

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
  .command('build')
  .description('compile the native addon from the shipped sources (cmake-js; needs CMake and a C++17 compiler); CPU only unless --cuda')
  .option('--cuda', 'also compile the CUDA kernels (needs nvcc); the result is probed in a child process')
  .option('--cuda-arch <list>', 'CUDA architectures, e.g. 90 or native (default 80;90)')
  .option('--debug', 'Debug build (build/Debug)')
  .option('-j, --jobs <n>', 'parallel compile jobs (default: all cores)')
  .action((opts: BuildFlags) => {
    process.exitCode = buildCommand(opts);
  });

program
  .command('bench-kernels')
  .description('time the main CPU kernels (gemm, attention, logprob, fused linear log-prob, GRPO loss) on fixed shapes in a few seconds')
  .option('--json', 'print the results as JSON')
  .option('--threads <n>', 'kernel threads (0: default)')
  .option('--min-time <ms>', 'least time spent timing each kernel', '300')
  .action((opts: BenchKernelsFlags) => {
    process.exitCode = benchKernelsCommand(opts);
  });

program
  .command('envs')
  .description('list the registered environment ids')
  .option('--json', 'print the specs as JSON')
  .action((opts: { json?: boolean }) => {
    const specs = listEnvs();
    if (opts.json) console.log(JSON.stringify(specs, null, 2));
    else {
      const w = Math.max(...specs.map((s) => s.id.length));
      for (const s of specs) console.log(`${s.id.padEnd(w)}  ${s.description}`);
    }
  });

program
  .command('train')
  .description('run the recipe: SFT warm start on scripted-expert demos, GRPO with image tools, eval, report')
  .option('-c, --config <file>', 'config file (JSON or YAML); flags override it')
  .option('-o, --out <dir>', 'run directory (default runs/medgym-train)')
  .option('--steps <n>', 'GRPO steps')
  .option('--sft-steps <n>', 'SFT steps')
  .option('--preset <name>', 'policy preset: tiny | small | base')
  .option('--env <id>', 'env id (`medgym envs`), e.g. MedVista-Synth-v0 for the full 8-modality task')
  .option('--device <name>', "cpu | cuda | auto (the GPU when usable, else the CPU: the run logs which and why)")
  .option('--dtype <name>', 'fp32 | bf16 (GEMM precision on the GPU)')
  .option('--seed <n>', 'master seed')
  .option('--threads <n>', 'native threads (0: default)')
  .option('--eval-items <n>', 'held-out items per evaluation')
  .option('--eval-samples <n>', 'samples per item for Pass@K')
  .option('--train-modalities <list>', 'train on these modalities only, comma-separated (eval covers all)')
  .option('--dataset <path>', 'train and evaluate on your data: a data.jsonl, a MedMNIST .npz, or a VQA-RAD / SLAKE / PMC-VQA / OmniMedVQA folder')
  .option('--dataset-kind <kind>', 'jsonl | manifest | csv | medmnist | vqa-rad | slake | pmc-vqa | omnimedvqa (default: guessed from the path)')
  .option('--strict', 'stop at the first bad dataset row (default: skip it, count it, name it)')
  .option('--quick', 'every phase in under a minute (few steps, small eval): try the pipeline on new data')
  .option('--stop-after <n>', 'checkpoint and stop after n steps in this invocation (as Ctrl-C)')
  .option('--resume', 'continue the run in --out from its latest checkpoint')
  .option('--no-report', 'skip the report')
  .option('--no-control', "skip the control (SFT continued for GRPO's wall time)")
  .option('--no-progress', 'log lines instead of progress bars')
  .action(async (opts: TrainFlags) => {
    process.exitCode = await trainCommand(opts);
  });

program
  .command('eval')
  .description('evaluate a policy checkpoint or a pretrained model: Acc@1 (greedy) and Pass@K, per modality and question type, with and without tools')
  .option('--checkpoint <file>', 'policy .safetensors')
  .option('--model <name>', 'instead of --checkpoint: a Hugging Face Qwen2-VL / Qwen2.5-VL model directory, on the env of --env / --dataset / --config; with --policy: the served model id')
  .option('--policy <url>', 'an OpenAI-compatible server (http://host:port/v1) serving --model: evaluate it on the env (docs/http_policy.md)')
  .option('--protocol <name>', "--policy: auto | medgym-vlm | chat (default auto: from the server's /models entry)")
  .option('--tool-format <format>', '--policy, chat protocol: openai (tools + tool_calls, default) | text (tools in the system text)')
  .option('--concurrency <n>', '--policy: requests in flight at most (default 8)')
  .option('--timeout <s>', '--policy: seconds per request (default 120)')
  .option('--api-key-env <var>', '--policy: environment variable holding the API key (default OPENAI_API_KEY)')
  .option('--env <id>', '--model: env id (`medgym envs`)')
  .option('--dataset <path>', '--model: evaluate on the held-out items of your data (as `medgym train --dataset`)')
  .option('--dataset-kind <kind>', '--model: the dataset kind (default: guessed from the path)')
  .option('--view-size <px>', "--model: side of the env's views (default 64)")
  .option('--weights-dtype <dtype>', '--model: keep the matrices in auto (bf16 for a BF16 checkpoint), bfloat16 or float32')
  .option('--decode-math <math>', '--model, bf16 weights: exact (default) or bf16 (faster batched decode, PyTorch-bf16 numbers)')
  .option('-c, --config <file>', 'config (env and eval settings); default the run config.json beside the checkpoint')
  .option('--items <n>', 'held-out items')
  .option('--samples <n>', 'samples per item (Pass@K, K = 1..n)')
  .option('--no-tools', 'skip the evaluation with tool calls banned')
  .option('--seed <n>', 'seed of the sampling streams')
  .option('--out <file>', 'write the JSON here (default stdout)')
  .action(async (opts: EvalAnyFlags) => {
    process.exitCode = await evalAnyCommand(opts);
  });

program
  .command('serve')
  .description('serve a medgym-vlm checkpoint or a Qwen2-VL / Qwen2.5-VL directory as an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models); docs/serve.md')
  .option('--checkpoint <file>', 'medgym-vlm checkpoint (.safetensors); exactly one of --checkpoint and --model')
  .option('--model <dir>', 'instead of --checkpoint: a Hugging Face Qwen2-VL / Qwen2.5-VL model directory (protocol qwen2-vl, CPU)')
  .option('--weights-dtype <dtype>', '--model: keep the matrices in auto (bf16 for a BF16 checkpoint), bfloat16 or float32')
  .option('--decode-math <math>', '--model, bf16 weights: exact (default) or bf16 (faster batched decode, PyTorch-bf16 numbers)')
  .option('--view-size <px>', '--model: side of the square view whose positions /v1/models reports as image_tokens (default 64)')
  .option('--name <id>', 'model id clients name (default: the file or directory base name)')
  .option('--host <addr>', 'interface to bind; anything but loopback needs --token', '127.0.0.1')
  .option('--port <n>', 'port', '8000')
  .option('--token <secret>', 'bearer token required on every route but /health (default: $MEDGYM_TOKEN)')
  .option('--max-batch <n>', 'sequences decoding at once (choices of all admitted requests)', '32')
  .option('--max-queue <n>', 'requests waiting for a batch slot; more get 429', '256')
  .option('--max-body <size>', 'largest request body (images travel in it)', '32mb')
  .option('--device <device>', 'cpu, cuda or auto', 'cpu')
  .option('--log', 'one JSON line per request on stdout (never headers or tokens)')
  .action(async (opts: ServeFlags) => {
    await serveCommand(opts);
  });

program
  .command('serve-env')
  .description('serve the environment over HTTP and WebSocket (OpenEnv protocol) for external trainers and policies; docs/bridges.md')
  .option('--host <addr>', 'interface to bind; anything but loopback needs --token', '127.0.0.1')
  .option('--port <n>', 'port', '8000')
  .option('--token <secret>', 'bearer token required on every route but /health (default: $MEDGYM_TOKEN)')
  .option('--env <id>', 'env id of sessions whose reset names none (`medgym envs`)')
  .option('--max-sessions <n>', 'live sessions at most (HTTP and WebSocket together)', '256')
  .option('--idle-timeout <s>', 'close a session idle this many seconds', '600')
  .option('--workers <n>', "worker processes on the same port (node:cluster); HTTP requests reach their session's worker wherever they land", '1')
  .option('--log', 'one JSON line per HTTP request on stdout (never headers or tokens)')
  .option('--images <mode>', 'how views travel unless a reset says otherwise: inline (base64 PNG) or blobs (sha256 + /blobs/<sha256> uri)', 'inline')
  .option('--dataset <NAME=PATH[:KIND]>', 'serve a dataset a reset names by NAME ({"dataset": NAME}; clients never see PATH); KIND as train --dataset-kind; repeatable', (v: string, acc: string[] = []) => [...acc, v])
  .action(async (opts: ServeEnvFlags) => {
    await serveEnvCommand(opts);
  });

program
  .command('report <run>')
  .description('write report.md and report.html (plots as SVG and PNG) from a run directory')
  .action(async (run: string) => {
    const r = await writeReport(run);
    console.log(r.markdown);
    console.log(r.html);
  });

program
  .command('matrix <runs...>')
  .description('cross-modality generalization (Med-R1): train-subset × test-modality Acc@1 heatmap (SVG, PNG) and table from runs with env.trainModalities')
  .option('-o, --out <dir>', 'output directory', 'runs/matrix')
  .option('--eval <which>', 'final (SFT+GRPO) or sft', 'final')
  .option('--no-tools', 'use the evaluation with tool calls banned')
  .action(async (runs: string[], opts: { out: string; eval: string; tools: boolean }) => {
    if (opts.eval !== 'final' && opts.eval !== 'sft') throw new RangeError(`Expected --eval final or sft but received ${JSON.stringify(opts.eval)}`);
    const r = await writeMatrix(runs, opts.out, { eval: opts.eval, tools: opts.tools });
    console.log(r.markdown);
    console.log(r.png);
  });

program
  .command('data')
  .description('datasets from disk (JSONL/JSON/CSV manifests, MedMNIST, VQA-RAD, SLAKE, PMC-VQA, OmniMedVQA)')
  .addCommand(
    new Command('check')
      .description('open a dataset, decode every image, and print counts, image sizes and every bad row (file:line); exit 1 when no usable item remains')
      .argument('<path>', 'a data.jsonl, .json or .csv manifest, MedMNIST .npz, or a dataset folder')
      .option('--kind <kind>', DATA_KINDS_HELP)
      .option('--strict', 'any bad row is an error (exit 1)')
      .option('--json', 'print the report as JSON')
      .option('--language <lang>', 'SLAKE question language (default en)')
      .option('--axis <n>', 'NIfTI: slice axis for volumes whose row does not say (0, 1, 2)')
      .option('--slice <n>', 'NIfTI: slice index for volumes whose row does not say')
      .action(async (p: string, opts: DataCheckFlags) => {
        process.exitCode = await dataCheckCommand(p, opts);
      }),
  );

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
