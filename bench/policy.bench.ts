// The native policy (SPEC §1 `medgym-vlm`) vs its peers, on the same weights and thread count
// (except PyTorch decoding, which gets the faster of N threads and 1: see policy_torch.py):
// - PyTorch eager CPU (bench/peers/policy_torch.py on bench/peers/medgym_vlm.py, loading our checkpoint):
//   forward log-probs, training step (forward + backward + clip + AdamW), greedy KV-cache generation;
// - onnxruntime-node (CPU EP) running the same PyTorch model exported with torch.onnx.export: forward.
// Before timing anything it asserts that both peers reproduce medgym's log-probs (max |Δlogp| < 1e-3).
// Targets: training ≥ 2× PyTorch eager, forward ≥ 1× onnxruntime-node. Ratios > 1: medgym is faster.
// Generation is timed twice for medgym: B separately added copies of the prompt (each prefilled, each
// with its own KV cache, as the peer does) and one prompt forked into B sequences (session.fork: one
// prefill, the prompt's KV cache shared — what GRPO rollouts do); both must give the peer's greedy ids.
// Run: `npx tsx bench/run.ts policy` (about 5 minutes on 2 busy cores; MEDGYM_POLICY_BENCH_QUICK=1 for a
// smoke run of the same code on the tiny model in ~30 s; MEDGYM_POLICY_BENCH_PARTS=generation or
// =train for one half). Needs /usr/bin/python3 with torch 1.13+.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nativeInfo } from '../src/native';
import { nativePolicyFunctions } from '../src/native/policy';
import { DEFAULT_BANNED_TOKENS, NativePolicy, type PolicySequence, type TrainablePolicy } from '../src/policy';
import type { ViewImage } from '../src/tools/image';
import { BOS_ID, IMAGE_ID, PAD_ID } from '../src/tokenizer';
import { printTable, runPeer, timeAsync, type Timing } from './harness';

// MEDGYM_POLICY_BENCH_QUICK=1: a seconds-long smoke run of the same code (tiny model, small batches).
const QUICK = process.env.MEDGYM_POLICY_BENCH_QUICK === '1';
const PARTS = (process.env.MEDGYM_POLICY_BENCH_PARTS ?? 'train,generation').split(',');
const TRAIN = QUICK ? { preset: 'tiny' as const, B: 2, T: 256 } : { preset: 'small' as const, B: 16, T: 512 };
const GEN = { presets: QUICK ? (['tiny'] as const) : (['tiny', 'small'] as const), batches: QUICK ? [1, 4] : [1, 16, 64], newTokens: 32 };
const TOL = 1e-3;
/** Tensors whose SFT-loss gradient the peer compares with medgym's (max |Δ| / max |g|). */
const GRAD_CHECK = ['wte.weight', 'wpe.weight', 'patch_embed.weight', 'patch_pos.weight', 'h.0.attn.c_attn.weight', 'h.0.mlp.c_proj.weight', 'ln_f.weight'];
const GRAD_TOL = 1e-3;
// The native generate() default; the peer bans the same ids so greedy decoding can agree.
const BANNED = [...DEFAULT_BANNED_TOKENS];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 8;
}

/** B sequences of exactly T expanded positions: <|bos|>, 32 text bytes, one view, text to the end. */
function trainBatch(policy: TrainablePolicy, B: number, T: number): PolicySequence[] {
  const { imageSize: S, channels: C } = policy.config;
  const L = T - (policy.imageTokens - 1);
  if (L < 40) throw new Error(`T=${T} leaves no room for text next to ${policy.imageTokens} image positions`);
  const rnd = lcg(1);
  return Array.from({ length: B }, () => {
    const tokens = new Int32Array(L);
    for (let i = 0; i < L; i++) tokens[i] = rnd() & 255;
    tokens[0] = BOS_ID;
    tokens[33] = IMAGE_ID;
    const data = new Uint8Array(S * S * C);
    for (let i = 0; i < data.length; i++) data[i] = rnd() & 255;
    return { tokens, images: [{ data, width: S, height: S, channels: C }] };
  });
}

/** The peer's deterministic view (policy_torch.py gen_image): pixel i = (37 i + 11) mod 256. */
function genImage(S: number, C: 1 | 3): ViewImage {
  const data = new Uint8Array(S * S * C);
  for (let i = 0; i < data.length; i++) data[i] = (37 * i + 11) % 256;
  return { data, width: S, height: S, channels: C };
}

function genPrompt(): number[] {
  const text = (s: string) => [...Buffer.from(s, 'utf8')];
  return [BOS_ID, ...text('Look at the image.\nuser: '), IMAGE_ID, ...text('\nWhich grade?\nassistant: ')];
}

// --- a minimal safetensors writer for the batch file (src/io/safetensors writes float tensors only)
type Typed = Int32Array | Uint8Array | Float32Array;
function writeTensors(file: string, tensors: Record<string, { shape: number[]; data: Typed }>): void {
  const header: Record<string, unknown> = {};
  const blobs: Buffer[] = [];
  let off = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    const dtype = data instanceof Int32Array ? 'I32' : data instanceof Uint8Array ? 'U8' : 'F32';
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype, shape, data_offsets: [off, off + bytes.length] };
    blobs.push(bytes);
    off += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...blobs]));
}

/** Token space (as NativePolicy.forward) -> the batch file the peer reads. */
function writeBatch(file: string, seqs: PolicySequence[], logp: Float32Array[], entropy: Float32Array[], mask: Float32Array[], grads: Record<string, Float32Array>): void {
  const B = seqs.length;
  const L = Math.max(...seqs.map((s) => s.tokens.length));
  const ids = new Int32Array(B * L).fill(PAD_ID);
  const lengths = new Int32Array(B);
  const flat = (rows: Float32Array[]) => {
    const out = new Float32Array(B * L);
    rows.forEach((r, b) => out.set(r, b * L));
    return out;
  };
  seqs.forEach((s, b) => {
    ids.set(Array.from(s.tokens), b * L);
    lengths[b] = s.tokens.length;
  });
  const views = seqs.flatMap((s) => s.images ?? []);
  const { width: S, channels: C } = views[0];
  const images = new Uint8Array(views.length * S * S * C);
  views.forEach((v, i) => images.set(v.data, i * S * S * C));
  writeTensors(file, {
    ids: { shape: [B, L], data: ids },
    lengths: { shape: [B], data: lengths },
    images: { shape: [views.length, S, S, C], data: images },
    mask: { shape: [B, L], data: flat(mask) },
    logp: { shape: [B, L], data: flat(logp) },
    entropy: { shape: [B, L], data: flat(entropy) },
    ...Object.fromEntries(Object.entries(grads).map(([name, g]) => [`grad.${name}`, { shape: [g.length], data: g }])),
  });
}

/** Scored tokens as forward() defines them by default: text tokens at t >= 1. */
function defaultMask(seqs: PolicySequence[]): Float32Array[] {
  return seqs.map((s) => Float32Array.from(s.tokens, (k, t) => (t >= 1 && k !== IMAGE_ID ? 1 : 0)));
}

interface TrainPeer {
  agree: { maxAbsDiff: number; meanAbsDiff: number; entropyMaxAbsDiff: number; n: number; meanLogp: number; loss: number };
  /** Per checked tensor: max |g_medgym - g_torch| / max |g_torch|. */
  gradRelDiff: Record<string, number>;
  onnx: string;
  forward: Timing;
  train: Timing;
}
interface GenPeer {
  generate: { B: number; promptPositions: number; newTokens: number; greedy: number[]; medianMs: number; prefillMs: number; threads: number }[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Timed runs per generation batch (after one warmup): the big batches are slow in the eager peer. */
const genRuns = (B: number) => (B >= 16 ? 1 : 3);

// --- onnxruntime-node on the exported graph: inputs over expanded positions, output logp [B, T]
// onnxruntime-node is not a dependency (its postinstall downloads binaries): install it for this peer
// with `npm i --no-save --ignore-scripts onnxruntime-node`; its bundled CPU binary then works.
// The few parts used here, typed locally so the project type-checks without it.
interface OrtTensor {
  data: unknown;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: { create(file: string, opts: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: string, data: BigInt64Array | Uint8Array, dims: number[]) => OrtTensor;
}
export const ORT_HINT = 'onnxruntime-node peer unavailable: npm i --no-save --ignore-scripts onnxruntime-node';

async function ortPeer(onnxFile: string, policy: TrainablePolicy, seqs: PolicySequence[], threads: number) {
  let ort: Ort;
  try {
    ort = require('onnxruntime-node') as Ort;
  } catch {
    console.log(ORT_HINT);
    return null;
  }
  const session = await ort.InferenceSession.create(onnxFile, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const Np = policy.imageTokens;
  const B = seqs.length;
  const pos = seqs.map((s) => {
    const p = new Int32Array(s.tokens.length);
    let t = 0;
    for (let i = 0; i < s.tokens.length; i++) {
      p[i] = t;
      t += s.tokens[i] === IMAGE_ID ? Np : 1;
    }
    return { p, T: t };
  });
  const T = Math.max(...pos.map((x) => x.T));
  const tokens = new BigInt64Array(B * T).fill(BigInt(PAD_ID));
  const patchSrc = new BigInt64Array(B * T).fill(-1n);
  let img = 0;
  seqs.forEach((s, b) => {
    for (let i = 0; i < s.tokens.length; i++) {
      const at = b * T + pos[b].p[i];
      if (s.tokens[i] === IMAGE_ID) {
        for (let j = 0; j < Np; j++) {
          tokens[at + j] = BigInt(IMAGE_ID);
          patchSrc[at + j] = BigInt(img * Np + j);
        }
        img++;
      } else tokens[at] = BigInt(s.tokens[i]);
    }
  });
  const views = seqs.flatMap((s) => s.images ?? []);
  const { width: S, channels: C } = views[0];
  const pixels = new Uint8Array(views.length * S * S * C);
  views.forEach((v, i) => pixels.set(v.data, i * S * S * C));
  const feeds = {
    tokens: new ort.Tensor('int64', tokens, [B, T]),
    patch_src: new ort.Tensor('int64', patchSrc, [B, T]),
    images: new ort.Tensor('uint8', pixels, [views.length, S, S, C]),
  };
  const run = async () => (await session.run(feeds)).logp.data as Float32Array;
  /** Its log-probs back in token space. */
  const logp = async () => {
    const out = await run();
    return seqs.map((s, b) => Float32Array.from(pos[b].p, (p) => out[b * T + p]));
  };
  return { run, logp, T, release: () => session.release() };
}

function maxDiff(a: Float32Array[], b: Float32Array[], mask: Float32Array[]): number {
  let m = 0;
  a.forEach((row, s) => row.forEach((x, t) => mask[s][t] && (m = Math.max(m, Math.abs(x - b[s][t])))));
  return m;
}

function assertAgree(what: string, diff: number): void {
  if (!(diff < TOL)) throw new Error(`policy bench: ${what} disagrees with medgym: max |Δlogp| = ${diff} (tolerance ${TOL})`);
}

export async function run(): Promise<void> {
  const threads = nativeInfo().threads;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-policy-bench-'));
  try {
    if (PARTS.includes('train')) await trainAndForward(dir, threads);
    if (PARTS.includes('generation')) await generation(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function trainAndForward(dir: string, threads: number): Promise<void> {
  const { B, T, preset } = TRAIN;
  const policy = NativePolicy.create(preset, { seed: 0 });
  try {
    const seqs = trainBatch(policy, B, T);
    const mask = defaultMask(seqs);
    const positions = B * T;
    const scored = mask.reduce((a, m) => a + m.reduce((x, y) => x + y, 0), 0);
    const ckpt = path.join(dir, `${preset}.safetensors`);
    const batchFile = path.join(dir, 'batch.safetensors');
    const onnxFile = path.join(dir, `${preset}.onnx`);
    await policy.save(ckpt);
    const ours = await policy.forward(seqs, { entropy: true });
    if (ours.positions !== positions) throw new Error(`policy bench: forward ran ${ours.positions} positions, expected ${positions}`);
    // The gradient of the SFT loss on this batch, for the peer to check medgym's backward too.
    const ce = await policy.crossEntropyBackward(seqs, { reduction: 'mean' });
    const grads = Object.fromEntries(GRAD_CHECK.map((name) => [name, policy.getGradient(name)]));
    await policy.zeroGrad();
    writeBatch(batchFile, seqs, ours.logp, ours.entropy, mask, grads);

    // medgym timings first: the training step changes the weights, so it goes last of all.
    const opts = { warmup: 1, minRuns: 2, minTimeMs: 0 };
    const fwd = await timeAsync(() => policy.forward(seqs, { entropy: false }), opts);

    // PyTorch eager: checks agreement (exits non-zero otherwise), exports the ONNX graph, times.
    const torch = runPeer<TrainPeer>('policy_torch.py', { checkpoint: ckpt, batch: batchFile, tol: TOL, onnx: onnxFile, forward: true, train: true, lr: 1e-4, weightDecay: 0.01, ...opts });
    if (torch) {
      assertAgree('PyTorch eager', torch.agree.maxAbsDiff);
      if (!(torch.agree.entropyMaxAbsDiff < TOL)) throw new Error(`policy bench: PyTorch entropy disagrees with medgym: max |Δ| = ${torch.agree.entropyMaxAbsDiff}`);
      for (const [name, d] of Object.entries(torch.gradRelDiff)) {
        if (!(d < GRAD_TOL)) throw new Error(`policy bench: gradient of ${name} disagrees with PyTorch: max |Δ| / max |g| = ${d}`);
      }
      if (!(Math.abs(torch.agree.loss - ce.loss) < TOL)) throw new Error(`policy bench: SFT loss ${ce.loss} vs PyTorch ${torch.agree.loss}`);
    }

    let ortFwd: Timing | undefined;
    let ortDiff = NaN;
    const ort = torch ? await ortPeer(onnxFile, policy, seqs, threads) : null;
    if (ort) {
      ortDiff = maxDiff(await ort.logp(), ours.logp, mask);
      assertAgree('onnxruntime-node', ortDiff);
      ortFwd = await timeAsync(ort.run, opts);
      await ort.release();
    }

    const train = await timeAsync(async () => {
      await policy.crossEntropyBackward(seqs, { reduction: 'mean' });
      await policy.step({ lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1 });
    }, opts);

    const c = policy.config;
    const shape = `${preset} d${c.dModel} L${c.nLayer} H${c.nHead} (${(policy.numParams / 1e6).toFixed(1)}M), B=${B} T=${T}, N_p=${policy.imageTokens}`;
    const tps = (t?: Timing) => (t ? (positions / t.medianMs) * 1e3 : NaN);
    const ratio = (theirs?: Timing, oursT?: Timing) => (theirs && oursT ? theirs.medianMs / oursT.medianMs : NaN);
    // napkin math: ≈ 2·params flop per position forward (+ attention), ≈ 3× that for a training step
    const gflops = (mult: number, t?: Timing) => (t ? ((mult * 2 * policy.numParams * positions) / t.medianMs / 1e6).toFixed(1) : '');
    const target = (r: number, want: number) => (Number.isNaN(r) ? `≥ ${want}` : `≥ ${want} ${r >= want ? 'met' : 'MISSED'}`);
    const rOrt = ratio(ortFwd, fwd);
    const rTrain = ratio(torch?.train, train);
    printTable(
      `policy: ${shape} — tokens/s = expanded positions/s (median); ratio = medgym / peer`,
      ['what', 'medgym tok/s', 'peer', 'peer tok/s', 'ratio', 'target', 'medgym GFLOP/s (2·params·positions fwd, ×3 train; no attn)'],
      [
        ['forward (logp)', tps(fwd), 'PyTorch eager', tps(torch?.forward), ratio(torch?.forward, fwd), '', gflops(1, fwd)],
        ['forward (logp)', tps(fwd), 'onnxruntime-node', tps(ortFwd), rOrt, target(rOrt, 1), gflops(1, fwd)],
        ['train step (fwd+bwd+clip+AdamW)', tps(train), 'PyTorch eager', tps(torch?.train), rTrain, target(rTrain, 2), gflops(3, train)],
      ],
    );
    if (torch) {
      console.log(
        `agreement over ${torch.agree.n} scored tokens (of ${scored}): PyTorch max |Δlogp| ${torch.agree.maxAbsDiff.toExponential(2)} ` +
          `(mean ${torch.agree.meanAbsDiff.toExponential(2)}), max |Δentropy| ${torch.agree.entropyMaxAbsDiff.toExponential(2)}; ` +
          `onnxruntime-node max |Δlogp| ${ortDiff.toExponential(2)}; mean logp ${torch.agree.meanLogp.toFixed(3)}`,
      );
      const worst = Object.entries(torch.gradRelDiff).sort((a, b) => b[1] - a[1])[0];
      console.log(`SFT loss ${ce.loss.toFixed(5)} (PyTorch ${torch.agree.loss.toFixed(5)}); gradients of ${GRAD_CHECK.length} tensors agree, worst ${worst[0]}: max |Δ| / max |g| = ${worst[1].toExponential(2)}`);
    }
  } finally {
    policy.dispose();
  }
}

async function generation(dir: string): Promise<void> {
  const prompt = genPrompt();
  const rows: (string | number)[][] = [];
  // An addon built before session.fork (MEDGYM_ADDON=<old build>, for before/after figures) has no fork.
  const canFork = typeof (nativePolicyFunctions() as Partial<ReturnType<typeof nativePolicyFunctions>>).sessionForkAsync === 'function';
  const greedyOpts = { maxNewTokens: GEN.newTokens, temperature: 0, stopTokens: [], bannedTokens: BANNED };
  for (const preset of GEN.presets) {
    const policy = NativePolicy.create(preset, { seed: 0 });
    try {
      const c = policy.config;
      const ckpt = path.join(dir, `gen-${preset}.safetensors`);
      await policy.save(ckpt);
      const image = genImage(c.imageSize, c.channels);
      const check = (outs: { tokens: Int32Array; finishReason: string }[]) => {
        for (const o of outs) {
          if (o.tokens.length !== GEN.newTokens) throw new Error(`policy bench: generate gave ${o.tokens.length} tokens (${o.finishReason}), expected ${GEN.newTokens}`);
        }
      };
      /** Median total and prefill time of B sequences of the prompt, added separately or forked from one. */
      const timeGen = async (B: number, fork: boolean) => {
        let greedy: Int32Array = new Int32Array(0);
        const addMs: number[] = [];
        const t = await timeAsync(
          async () => {
            const s = policy.createSession({ seed: 0 });
            try {
              const t0 = performance.now();
              const ids = fork
                ? await s.fork((await s.add([{ tokens: prompt, images: [image] }]))[0], B)
                : await s.add(Array.from({ length: B }, () => ({ tokens: prompt, images: [image] })));
              addMs.push(performance.now() - t0);
              const outs = await s.generate(ids, greedyOpts);
              check(outs);
              if (outs.some((o) => o.tokens.some((x, k) => x !== outs[0].tokens[k]))) throw new Error('policy bench: greedy samples of one prompt differ');
              greedy = outs[0].tokens;
            } finally {
              s.dispose();
            }
          },
          { warmup: 1, minRuns: genRuns(B), minTimeMs: 0 },
        );
        return { t, prefillMs: median(addMs.slice(1)), greedy };
      };
      const results: { B: number; sep: Awaited<ReturnType<typeof timeGen>>; forked?: Awaited<ReturnType<typeof timeGen>> }[] = [];
      for (const B of GEN.batches) results.push({ B, sep: await timeGen(B, false), forked: canFork ? await timeGen(B, true) : undefined });
      const peer = runPeer<GenPeer>('policy_torch.py', {
        checkpoint: ckpt,
        generate: GEN.batches.map((B) => ({ B, promptIds: prompt, newTokens: GEN.newTokens, banned: BANNED, minRuns: genRuns(B) })),
      });
      for (const { B, sep, forked } of results) {
        const p = peer?.generate.find((g) => g.B === B);
        const n = B * GEN.newTokens;
        const ours = (n / sep.t.medianMs) * 1e3;
        const theirs = p ? (n / p.medianMs) * 1e3 : NaN;
        const oursDec = (n / (sep.t.medianMs - sep.prefillMs)) * 1e3;
        const forkTok = forked ? (n / forked.t.medianMs) * 1e3 : NaN;
        const forkDec = forked ? (n / (forked.t.medianMs - forked.prefillMs)) * 1e3 : NaN;
        const theirsDec = p ? (n / (p.medianMs - p.prefillMs)) * 1e3 : NaN;
        let same = 0;
        while (p && same < sep.greedy.length && sep.greedy[same] === p.greedy[same]) same++;
        if (forked && forked.greedy.some((x, k) => x !== sep.greedy[k])) throw new Error('policy bench: forked and separate greedy ids differ');
        rows.push([`${preset} d${c.dModel} L${c.nLayer}`, String(B), ours, forkTok, theirs, ours / theirs, oursDec, forkDec, theirsDec, oursDec / theirsDec, forkDec / theirsDec, p ? String(p.threads) : '', p ? `${same}/${GEN.newTokens}` : '']);
      }
    } finally {
      policy.dispose();
    }
  }
  printTable(
    `policy generation: greedy, KV cache, prompt of ${prompt.length} tokens (1 view) + ${GEN.newTokens} new tokens per sequence, tok/s = new tokens / (prefill + decode) time; decode tok/s leaves the prefill out; "fork": one prompt prefilled and forked into B sequences sharing its KV cache; PyTorch: the faster of N threads and 1`,
    ['model', 'batch', 'medgym tok/s', 'medgym fork tok/s', 'PyTorch tok/s', 'ratio', 'medgym decode tok/s', 'medgym fork decode tok/s', 'PyTorch decode tok/s', 'ratio', 'fork ratio', 'PyTorch threads', 'greedy ids = peer'],
    rows,
  );
}
