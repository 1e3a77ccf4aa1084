// Qwen2-VL-2B-shaped model with random weights (QwenVLModel.random) on medgym's native engine against
// the plain-PyTorch reference (bench/qwen2_vl_torch.py) in eager mode, same workload, same thread count.
// Each side runs in its own child process, one after the other (the full model holds ~8.9 GB of float32
// weights here, ~4.4 GB of bf16 in PyTorch), so that each peak RSS is its own.
//
// Rows: the vision tower on two 448×448 images (2 × 1,024 patches → 2 × 256 merged tokens); the prefill
// of one ~1,024-token sequence holding both images (vision + decoder + the last row's logits); score =
// per-token log-probs of that sequence (ours: the fused head; PyTorch: every row's logits, log_softmax,
// gather); decode tokens/s at batch 1 and 16 after a 16-token text prompt (32 greedy steps).
//
//   npx tsx bench/qwen2_vl.ts                               # full size (28 layers, vision depth 32)
//   npx tsx bench/qwen2_vl.ts --layers 4 --vision-depth 4  # a quick run
//   options: --ours bf16,bf16dec,fp32 (our weights' storage, default bf16: the checkpoints' form;
//            bf16dec: bf16 weights with decodeMath 'bf16', decode rows in vdpbf16ps like PyTorch bf16),
//            --runs N (best of N, default 1), --tokens N (default 1024), --new N (decode steps, 32),
//            --torch bf16,fp32 (peers to run; "none" for ours only), --fp32-layers N / --fp32-vision-depth N
//            (a smaller model for the fp32 peer when memory or time is short; ratios then use ours at the
//            same size only if ours ran at it too, so leave them at the default for like-for-like)
import { spawnSync } from 'child_process';
import * as path from 'path';
import { parseQwenConfig } from '../src/models/qwen2_vl/config';
import { QwenVLModel } from '../src/models/qwen2_vl/engine';
import type { QwenSequence } from '../src/models/qwen2_vl/engine';
import { nativeInfo } from '../src/native';
import { fmt, machineLine } from './harness';

/** config.json of Qwen/Qwen2-VL-2B-Instruct (the fields the engine reads). */
export const QWEN2_VL_2B = {
  model_type: 'qwen2_vl',
  vocab_size: 151936,
  hidden_size: 1536,
  intermediate_size: 8960,
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  tie_word_embeddings: true,
  bos_token_id: 151643,
  eos_token_id: 151645,
  image_token_id: 151655,
  video_token_id: 151656,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_config: { depth: 32, embed_dim: 1280, hidden_size: 1536, hidden_act: 'quick_gelu', mlp_ratio: 4, num_heads: 16, in_chans: 3, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
};

interface Opts {
  layers: number;
  visionDepth: number;
  runs: number;
  tokens: number;
  newTokens: number;
  torch: string[];
  ours: ('bf16' | 'bf16dec' | 'fp32')[];
  fp32Layers?: number;
  fp32VisionDepth?: number;
}

interface Side {
  build_s: number;
  vision_s: number;
  prefill_s: number;
  score_s: number;
  decode_s: Record<string, number>;
  max_rss_bytes: number;
}

const BATCHES = [1, 16];
const MERGED = 256; // per 448×448 image
const SIDE = 32; // its patch grid

function parseArgs(argv: string[]): Opts & { worker?: string; job?: string } {
  const o: Opts & { worker?: string; job?: string } = { layers: 28, visionDepth: 32, runs: 1, tokens: 1024, newTokens: 32, torch: ['bf16', 'fp32'], ours: ['bf16'] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    const int = (): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for ${k} but received ${v}`);
      i++;
      return n;
    };
    if (k === '--layers') o.layers = int();
    else if (k === '--vision-depth') o.visionDepth = int();
    else if (k === '--runs') o.runs = int();
    else if (k === '--tokens') o.tokens = int();
    else if (k === '--new') o.newTokens = int();
    else if (k === '--fp32-layers') o.fp32Layers = int();
    else if (k === '--fp32-vision-depth') o.fp32VisionDepth = int();
    else if (k === '--torch') (o.torch = v === 'none' ? [] : v.split(',')), i++;
    else if (k === '--ours') {
      o.ours = v.split(',') as Opts['ours'];
      if (!o.ours.length || o.ours.some((d) => !['bf16', 'bf16dec', 'fp32'].includes(d))) throw new RangeError(`Expected bf16, bf16dec and/or fp32 for --ours but received ${v}`);
      i++;
    }
    else if (k === '--worker') (o.worker = v), i++;
    else if (k === '--job') (o.job = v), i++;
    else throw new RangeError(`unknown option ${k}`);
  }
  if (o.tokens < 2 * (MERGED + 2) + 2) throw new RangeError(`--tokens must be at least ${2 * (MERGED + 2) + 2} (two images)`);
  return o;
}

const hubConfig = (layers: number, depth: number) => ({ ...QWEN2_VL_2B, num_hidden_layers: layers, vision_config: { ...QWEN2_VL_2B.vision_config, depth } });

/** The episode: text, image, text, image, text (`tokens` in all), ids below the special tokens. */
function episode(tokens: number): number[] {
  let s = 12345;
  const word = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) % 151000;
  const text = (n: number): number[] => Array.from({ length: n }, word);
  const rest = tokens - 2 * (MERGED + 2);
  const a = Math.floor(rest / 3), b = Math.floor(rest / 3), c = rest - a - b;
  const img = [QWEN2_VL_2B.vision_start_token_id, ...Array<number>(MERGED).fill(QWEN2_VL_2B.image_token_id), QWEN2_VL_2B.vision_end_token_id];
  return [...text(a), ...img, ...text(b), ...img, ...text(c)];
}
const decodePrompt = (): number[] => episode(2 * (MERGED + 2) + 16).filter((t) => t < 151000).slice(0, 16);

const secs = async (fn: () => Promise<unknown>, runs: number): Promise<number> => {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best;
};

/** Child: our engine. */
async function ours(o: Opts): Promise<Side> {
  const config = parseQwenConfig(hubConfig(o.layers, o.visionDepth));
  let t = performance.now();
  const kind = o.ours[0];
  const model = QwenVLModel.random(config, 1, { dtype: kind === 'fp32' ? 'float32' : 'bfloat16', decodeMath: kind === 'bf16dec' ? 'bf16' : 'exact' });
  const build_s = (performance.now() - t) / 1000;
  const patchLen = 3 * 2 * 14 * 14;
  let s = 7;
  const image = () => ({
    pixelValues: Float32Array.from({ length: SIDE * SIDE * patchLen }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 4 - 2),
    grid: [1, SIDE, SIDE] as [number, number, number],
    mergedTokens: MERGED,
    size: [SIDE * 14, SIDE * 14] as [number, number],
  });
  const images = [image(), image()];
  const seq: QwenSequence = { ids: episode(o.tokens), images };
  const vision_s = await secs(() => model.encodeImages(images), o.runs);
  const prefill_s = await secs(() => model.lastLogits([seq]), o.runs);
  const score_s = await secs(() => model.score([seq]), o.runs);
  const decode_s: Record<string, number> = {};
  const prompt = decodePrompt();
  for (const B of BATCHES) {
    const seqs = Array.from({ length: B }, () => ({ ids: prompt }));
    let best = Infinity;
    for (let r = 0; r < o.runs; r++) {
      // n steps = generate(n + 1) − generate(1): the first token comes from the prefill's logits.
      t = performance.now();
      await model.generate(seqs, { maxNewTokens: 1, temperature: 0 });
      const one = performance.now() - t;
      t = performance.now();
      await model.generate(seqs, { maxNewTokens: o.newTokens + 1, temperature: 0 });
      best = Math.min(best, (performance.now() - t - one) / 1000);
    }
    decode_s[String(B)] = best;
  }
  model.dispose();
  return { build_s, vision_s, prefill_s, score_s, decode_s, max_rss_bytes: process.resourceUsage().maxRSS * 1024 };
}

function child(cmd: string, args: string[]): Side {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  if (res.status !== 0) throw new Error(`${cmd} ${args[0]} failed (status ${res.status}, signal ${res.signal})`);
  const lines = res.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Side;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker === 'ours') {
    console.log(JSON.stringify(await ours(o)));
    return;
  }
  const threads = nativeInfo().threads;
  console.log(`# Qwen2-VL-2B-shaped, random weights — ${machineLine()}`);
  console.log(`# layers ${o.layers}, vision depth ${o.visionDepth}, episode ${o.tokens} tokens (2 images × ${MERGED}), decode ${o.newTokens} steps after 16 tokens, best of ${o.runs}`);
  const common = ['--layers', String(o.layers), '--vision-depth', String(o.visionDepth), '--runs', String(o.runs), '--tokens', String(o.tokens), '--new', String(o.newTokens)];
  const sides: [string, Side][] = [];
  const sizes: string[] = [];
  for (const dtype of o.ours) {
    console.error(`running ours ${dtype} ...`);
    sizes.push(`${o.layers}/${o.visionDepth}`);
    sides.push([`medgym ${dtype} (${o.layers}L/${o.visionDepth}V)`, child(process.execPath, [...process.execArgv, __filename, '--worker', 'ours', '--ours', dtype, ...common])]);
  }
  for (const dtype of o.torch) {
    const layers = dtype === 'fp32' ? o.fp32Layers ?? o.layers : o.layers;
    const depth = dtype === 'fp32' ? o.fp32VisionDepth ?? o.visionDepth : o.visionDepth;
    console.error(`running torch ${dtype} ...`);
    sizes.push(`${layers}/${depth}`);
    const job = { threads, dtype, config: hubConfig(layers, depth), ids: episode(o.tokens), decode_prompt: decodePrompt(), decode_new: o.newTokens, batches: BATCHES, runs: o.runs };
    const py = process.env.MEDGYM_BENCH_PYTHON ?? '/usr/bin/python3';
    sides.push([`torch ${dtype} (${layers}L/${depth}V)`, child(py, [path.join(__dirname, 'qwen2_vl_torch.py'), JSON.stringify(job)])]);
  }
  const rate = (s: Side): number[] => [
    (2 * SIDE * SIDE) / s.vision_s,
    o.tokens / s.prefill_s,
    o.tokens / s.score_s,
    ...BATCHES.map((B) => (B * o.newTokens) / s.decode_s[String(B)]),
  ];
  const names = ['vision tower, patches/s', `prefill ${o.tokens} tok (vision incl.), tok/s`, `score ${o.tokens} tok (vision incl.), tok/s`, ...BATCHES.map((B) => `decode batch ${B}, tok/s`)];
  const ourRates = rate(sides[0][1]);
  const header = ['row', ...sides.map(([n]) => n), ...sides.slice(1).map(([n]) => `ours / ${n.split(' (')[0]}`)];
  const rows: string[][] = names.map((n, i) => [n, ...sides.map(([, s]) => fmt(rate(s)[i])), ...sides.slice(1).map(([, s], k) => (sizes[k + 1] === sizes[0] ? `**${fmt(ourRates[i] / rate(s)[i])}**` : 'n/a (other size)'))]);
  const secsRow = (label: string, f: (s: Side) => number): string[] => [label, ...sides.map(([, s]) => fmt(f(s))), ...sides.slice(1).map(() => '')];
  rows.push(secsRow('vision tower, s', (s) => s.vision_s), secsRow('prefill, s', (s) => s.prefill_s), secsRow('score, s', (s) => s.score_s));
  rows.push(secsRow('text part of prefill (prefill − vision), tok/s', (s) => o.tokens / (s.prefill_s - s.vision_s)));
  rows.push(secsRow('peak RSS, GiB', (s) => s.max_rss_bytes / 2 ** 30), secsRow('build + random init, s', (s) => s.build_s));
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i].length)));
  console.log();
  for (const [k, r] of [header, ...rows].entries()) {
    console.log(`| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`);
    if (k === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  }
  console.log(`\nthreads ${threads} on both sides; ratios are ours / torch (> 1: ours faster); ours keeps weights in bf16 or fp32 and computes in fp32 (torch fp32 is the like-for-like arithmetic).`);
}

if (require.main === module) main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
