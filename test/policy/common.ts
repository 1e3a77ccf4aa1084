// Shared fixtures of the policy tests: a small config, random "interesting" weights, views, sequences.
import { NativePolicy, type PolicyConfig } from '../../src/policy';
import { encode, IMAGE_ID } from '../../src/tokenizer';
import type { ViewImage } from '../../src/tools/image';
import { Rng } from '../helpers/random';
import type { RefParams } from '../helpers/ref_policy';

/** Smaller than the tiny preset: d 32, 2 layers, 16×16 views of 8×8 patches (N_p = 4). */
export const TEST_CONFIG: Partial<PolicyConfig> = { dModel: 32, nLayer: 2, nHead: 4, maxSeq: 96, patch: 8, imageSize: 16, channels: 3 };

/** Replaces the init with larger random values so that logits are far from uniform (a stronger check). */
export function randomizeWeights(p: NativePolicy, seed: number): void {
  const rng = new Rng(seed);
  for (const t of p.parameters()) {
    const isLnWeight = /ln_(1|2|f)\.weight$/.test(t.name);
    const data = new Float32Array(t.size);
    for (let i = 0; i < t.size; i++) {
      data[i] = isLnWeight ? 1 + 0.2 * rng.normal() : t.shape.length === 1 ? 0.1 * rng.normal() : (0.6 / Math.sqrt(t.shape[t.shape.length - 1])) * rng.normal() + 0.02 * rng.normal();
    }
    if (t.name === 'wte.weight' || t.name === 'wpe.weight') for (let i = 0; i < t.size; i++) data[i] = 0.5 * rng.normal();
    p.setParameter(t.name, data);
  }
}

export function paramsF64(p: NativePolicy): RefParams {
  const m: RefParams = new Map();
  for (const t of p.parameters()) m.set(t.name, Float64Array.from(p.getParameter(t.name)));
  return m;
}

export function randomView(rng: Rng, size: number, channels: 1 | 3 = 3): ViewImage {
  const data = new Uint8Array(size * size * channels);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(0, 256);
  return { data, width: size, height: size, channels };
}

/** A ragged batch mixing text and images (including an image at the start and two in a row). */
export function mixedBatch(rng: Rng, size: number): { tokens: number[]; images?: ViewImage[]; mask?: number[] }[] {
  return [
    { tokens: [...encode('<|bos|>look: '), IMAGE_ID, ...encode('\nQ?<answer>B</answer><|eos|>')], images: [randomView(rng, size)] },
    { tokens: encode('<|bos|>only text, odd length') },
    { tokens: [IMAGE_ID, IMAGE_ID, ...encode('two')], images: [randomView(rng, size), randomView(rng, size, 1)] },
    { tokens: encode('x') },
  ];
}
