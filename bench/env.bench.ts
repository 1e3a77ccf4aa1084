// Environment throughput: generator images/s, a VectorEnv of 64 stepping scripted actions (env
// steps/s and tool calls/s, with and without the shared view/item caches), and the event-loop delay
// while the tools run (sharp works on libuv's pool; the generator and the parser run on the loop).
// Run: npx tsx bench/run.ts env
import { monitorEventLoopDelay } from 'perf_hooks';
import * as os from 'os';
import { generateItem, MODALITIES } from '../src/data/synth';
import { Stream } from '../src/data/rng';
import { makeVec } from '../src/env';
import { printTable } from './harness';

const N_ENVS = 64;
const CELLS = ['A1', 'A2', 'B1', 'B2', 'B3', 'C2', 'C3', 'D4'];

function generatorRate(): (string | number)[][] {
  const rows: (string | number)[][] = [];
  for (const m of MODALITIES) {
    for (let i = 0; i < 3; i++) generateItem({ modalities: [m] }, i); // warm up
    let n = 0;
    const t = performance.now();
    while (performance.now() - t < 300) generateItem({ modalities: [m] }, 1000 + n++);
    const s = (performance.now() - t) / 1000;
    rows.push([m, n / s, (s * 1000) / n]);
  }
  return rows;
}

/** Each sub-env: `turns` zoom/crop calls on seeded cells, then an answer; autoreset continues. */
async function vecRun(cached: boolean, workers: number, seconds: number): Promise<{ steps: number; tools: number; episodes: number; s: number; lag: { p50: number; p99: number; max: number } }> {
  const vec = makeVec('MedVista-Synth-v0', N_ENVS, { generatorWorkers: workers, ...(cached ? {} : { viewCacheSize: 0, itemCacheSize: 0 }) });
  await vec.reset({ seed: 1 });
  const rng = new Stream(42);
  const turn = new Array<number>(N_ENVS).fill(0);
  let steps = 0;
  let tools = 0;
  let episodes = 0;
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t = performance.now();
  while (performance.now() - t < seconds * 1000) {
    const actions = turn.map((k) => {
      if (k >= 3) return '<answer>A</answer><|eos|>';
      const cell = CELLS[rng.int(0, CELLS.length)];
      return rng.next() < 0.8
        ? `<tool_call>{"name": "zoom_in", "arguments": {"cell": "${cell}"}}</tool_call>`
        : `<tool_call>{"name": "crop_multi", "arguments": {"bboxes": [{"cell": "${cell}"}, {"cell": "A1", "span": 2}]}}</tool_call>`;
    });
    const r = await vec.step(actions);
    r.infos.forEach((info, i) => {
      if (info.autoreset) turn[i] = 0;
      else {
        steps++;
        turn[i]++;
        tools += info.toolCalls.filter((c) => c.turn === info.turn && c.ok).length;
      }
      if (r.terminated[i] || r.truncated[i]) episodes++;
    });
  }
  const s = (performance.now() - t) / 1000;
  h.disable();
  return { steps, tools, episodes, s, lag: { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 } };
}

/** GRPO-style rounds: 8 prompts x G = 8 samples on the 64 sub-envs, 3 zooms each, then answers. */
async function grpoRun(workers: number, seconds: number): Promise<{ tools: number; steps: number; s: number; lag: number }> {
  const vec = makeVec('MedVista-Synth-v0', N_ENVS, { generatorWorkers: workers });
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t = performance.now();
  let tools = 0;
  let steps = 0;
  for (let round = 0; performance.now() - t < seconds * 1000; round++) {
    await vec.reset({ indices: vec.envs.map((_, i) => round * 8 + (i >> 3)) });
    for (let k = 0; k < 3; k++) {
      const rs = await Promise.all(vec.envs.map((e, i) => e.step(`<tool_call>{"name":"zoom_in","arguments":{"cell":"${'ABCD'[(i + k) % 4]}${1 + ((i * 3 + k) % 4)}"}}</tool_call>`)));
      tools += rs.filter((r) => r.info.toolCalls[k]?.ok).length;
      steps += rs.length;
    }
    steps += (await Promise.all(vec.envs.map((e) => e.step('<answer>A</answer><|eos|>')))).length;
  }
  const s = (performance.now() - t) / 1000;
  h.disable();
  return { tools, steps, s, lag: h.percentile(99) / 1e6 };
}

export async function run(): Promise<void> {
  printTable('MedVista-Synth-v0 generator (256x256, one item per call, main thread)', ['modality', 'images/s', 'ms/image'], generatorRate());
  const rows: (string | number)[][] = [];
  const settings: [string, boolean, number][] = [
    ['generator on the loop, caches (default)', true, 0],
    ['generator on the loop, no caches', false, 0],
    ['generator on 1 worker, caches', true, 1],
    ['generator on 2 workers, caches', true, 2],
  ];
  for (const [name, cached, workers] of settings) {
    await vecRun(cached, workers, 1); // warm up (and start the workers)
    const r = await vecRun(cached, workers, 5);
    rows.push([name, r.steps / r.s, r.tools / r.s, r.episodes / r.s, r.lag.p50, r.lag.p99, r.lag.max]);
  }
  for (const workers of [0, 2]) {
    await grpoRun(workers, 1);
    const r = await grpoRun(workers, 5);
    rows.push([`GRPO rounds (8 prompts x G 8), ${workers} workers`, r.steps / r.s, r.tools / r.s, (r.steps / 4 / r.s), '', r.lag, '']);
  }
  printTable(
    `VectorEnv x${N_ENVS} (MedVista-Synth-v0, 64x64 RGB views, 3 tool turns + answer; ${os.cpus().length} cores, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4})`,
    ['setting', 'env steps/s', 'tool calls/s', 'episodes/s', 'loop delay p50 ms', 'p99 ms', 'max ms'],
    rows,
  );
}
