// Rough throughput of the native policy (no peer; bench/policy*.bench.ts races peers):
//   npx tsx bench/policy_throughput.ts [tiny|small|base ...]
// Prints forward positions/s (scoring), training positions/s (forward + CE backward + AdamW) and
// generation tokens/s (KV-cache sampling, 64 new tokens) at batch 1/16/64 after a ~110-position
// prompt with one 64×64 image.
import { NativePolicy, type PolicyPreset } from '../src/policy';
import { nativeInfo } from '../src/native';
import { encode, IMAGE_ID } from '../src/tokenizer';

async function main(): Promise<void> {
  const presets = (process.argv.slice(2).length ? process.argv.slice(2) : ['tiny', 'small']) as PolicyPreset[];
  const info = nativeInfo();
  console.log(`# policy throughput — ${info.threads} threads, simd ${info.simd}`);
  for (const preset of presets) {
    const p = NativePolicy.create(preset, { seed: 1 });
    const S = p.config.imageSize;
    const img = { data: new Uint8Array(S * S * 3).map((_, i) => (i * 7) % 251), width: S, height: S, channels: 3 as const };
    const prompt = [...encode('<|bos|>You are a radiologist.\nuser: '), IMAGE_ID, ...encode('\nWhat texture? A) x B) y C) z\nassistant: ')];
    const rows: string[] = [];
    for (const B of [1, 16, 64]) {
      let best = 0;
      for (let rep = 0; rep < 3; rep++) {
        const s = p.createSession();
        const ids = await s.add(Array.from({ length: B }, (_, i) => ({ tokens: prompt, images: [img], key: { sampleIndex: i } })));
        const t0 = performance.now();
        const out = await s.generate(ids, { maxNewTokens: 64, stopTokens: [] });
        const n = out.reduce((a, o) => a + o.tokens.length, 0);
        best = Math.max(best, n / ((performance.now() - t0) / 1000));
        s.dispose();
      }
      rows.push(`generate B=${B}: ${best.toFixed(0)} tok/s`);
    }
    const batch = Array.from({ length: 16 }, () => ({ tokens: [...prompt, ...encode('<think>look at it</think><answer>B</answer><|eos|>')], images: [img] }));
    const pos = batch.reduce((a, b) => a + b.tokens.length - 1 + p.imageTokens, 0);
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await p.forward(batch);
      best = Math.min(best, performance.now() - t0);
    }
    rows.push(`forward (16 seqs × ${pos / 16} positions): ${(pos / (best / 1000)).toFixed(0)} positions/s`);
    best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await p.crossEntropyBackward(batch);
      await p.step({});
      best = Math.min(best, performance.now() - t0);
    }
    rows.push(`train step (fwd + bwd + AdamW): ${(pos / (best / 1000)).toFixed(0)} positions/s`);
    console.log(`${preset} (${(p.numParams / 1e6).toFixed(2)}M params)\n  ${rows.join('\n  ')}`);
    p.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
