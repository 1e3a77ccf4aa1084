// Qwen2-VL / Qwen2.5-VL config.json and weight table: the Hub configs of Qwen2-VL-2B-Instruct and
// Qwen2.5-VL-3B-Instruct give the parameter counts the Hub shows for them (2.21B, 3.75B); tiny checkpoints
// in the Hugging Face layout (two shards, an index) match their table in either tensor spelling, and
// every inconsistency is named before any weight is read.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeSafetensorsSync } from '../../../src/io/safetensors';
import { openHfCheckpoint } from '../../../src/models/hf_checkpoint';
import { parseQwenConfig, readQwenConfig } from '../../../src/models/qwen2_vl/config';
import { matchWeights, parameterCount, weightTable } from '../../../src/models/qwen2_vl/weights';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-qwen-cfg-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

// Values of the Hub config.json files (Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2.5-VL-3B-Instruct).
const QWEN2_VL_2B = {
  model_type: 'qwen2_vl', architectures: ['Qwen2VLForConditionalGeneration'], hidden_size: 1536, intermediate_size: 8960, num_hidden_layers: 28, num_attention_heads: 12,
  num_key_value_heads: 2, vocab_size: 151936, tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vision_start_token_id: 151652, vision_end_token_id: 151653, image_token_id: 151655, video_token_id: 151656,
  vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 1536, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
};
const QWEN25_VL_3B = {
  model_type: 'qwen2_5_vl', hidden_size: 2048, intermediate_size: 11008, num_hidden_layers: 36, num_attention_heads: 16, num_key_value_heads: 2, vocab_size: 151936,
  tie_word_embeddings: true, rms_norm_eps: 1e-6, rope_theta: 1000000, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vision_config: { depth: 32, hidden_act: 'silu', hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3, out_hidden_size: 2048, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, window_size: 112, fullatt_block_indexes: [7, 15, 23, 31], tokens_per_second: 2 },
};

test('the Hub configs parse, and their tables give the parameter counts the Hub shows (2.21B, 3.75B)', () => {
  const a = parseQwenConfig(QWEN2_VL_2B);
  expect(a).toMatchObject({ family: 'qwen2_vl', text: { headDim: 128, kvHeads: 2, tieEmbeddings: true, mropeSection: [16, 24, 24] }, vision: { dim: 1280, mlpHidden: 5120, block: 'layernorm_gelu', outHidden: 1536 }, tokens: { image: 151655, visionStart: 151652 } });
  expect((parameterCount(a) / 1e9).toFixed(2)).toBe('2.21'); // Qwen2-VL-2B-Instruct
  const b = parseQwenConfig(QWEN25_VL_3B);
  expect(b).toMatchObject({ family: 'qwen2_5_vl', vision: { dim: 1280, mlpHidden: 3420, block: 'rmsnorm_swiglu', windowSize: 112, fullAttBlocks: [7, 15, 23, 31] } });
  expect((parameterCount(b) / 1e9).toFixed(2)).toBe('3.75'); // Qwen2.5-VL-3B-Instruct
  // newer transformers nest the text fields and rename rope_scaling / in_chans
  const { hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size, rope_scaling, ...rest } = QWEN2_VL_2B;
  const nested = { ...rest, text_config: { hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size, rope_parameters: rope_scaling }, vision_config: { ...QWEN2_VL_2B.vision_config, in_chans: undefined, in_channels: 3 } };
  expect(parseQwenConfig(nested)).toEqual(a);
});

test('a bad config is refused by file and field', () => {
  const bad = (over: object, vision: object = {}): unknown => ({ ...QWEN2_VL_2B, ...over, vision_config: { ...QWEN2_VL_2B.vision_config, ...vision } });
  expect(() => parseQwenConfig({ ...QWEN2_VL_2B, model_type: 'llava' }, 'x/config.json')).toThrow(/^x\/config\.json: model_type: "llava" is not supported \(supported: qwen2_vl, qwen2_5_vl\)/);
  expect(() => parseQwenConfig(bad({ num_key_value_heads: 5 }))).toThrow(/num_key_value_heads: 5 does not divide num_attention_heads 12/);
  expect(() => parseQwenConfig(bad({ rope_scaling: { type: 'mrope', mrope_section: [16, 24, 16] } }))).toThrow(/mrope_section: \[16,24,16\] sums to 56, not head dim \/ 2 = 64/);
  expect(() => parseQwenConfig(bad({}, { hidden_size: 2048 }))).toThrow(/vision_config\.hidden_size: 2048 differs from the language model's hidden_size 1536/);
  expect(() => parseQwenConfig(bad({ num_hidden_layers: 1.5 }))).toThrow(/num_hidden_layers: expected an integer/);
  expect(() => parseQwenConfig(bad({ image_token_id: 200000 }))).toThrow(/image_token_id: expected an integer in \[0, 151935\]/);
  expect(() => parseQwenConfig({ ...QWEN25_VL_3B, vision_config: { ...QWEN25_VL_3B.vision_config, fullatt_block_indexes: [40] } })).toThrow(/fullatt_block_indexes: expected block indices in \[0, 32\)/);
  fs.writeFileSync(path.join(TMP, 'config.json'), '{"model_type": ');
  expect(() => readQwenConfig(TMP)).toThrow(/config\.json: not valid JSON/);
});

/** A tiny random checkpoint of `json`'s config in the HF layout: two shards + index; `rename` may respell names. */
function tinyCheckpoint(name: string, json: object, rename: (n: string) => string = (n) => n, drop?: string, reshape?: string): string {
  const dir = path.join(TMP, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
  const table = weightTable(parseQwenConfig(json)).filter((w) => w.name !== drop);
  const tensors = table.map((w) => {
    const shape = w.name === reshape ? [...w.shape].reverse() : w.shape;
    return { name: rename(w.name), shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)), dtype: 'BF16' as const };
  });
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const map: Record<string, string> = {};
  shards.forEach((ts, k) => {
    const f = `model-0000${k + 1}-of-00002.safetensors`;
    writeSafetensorsSync(path.join(dir, f), ts, { format: 'pt' });
    for (const t of ts) map[t.name] = f;
  });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: map }));
  return dir;
}

const TINY_2 = { ...QWEN2_VL_2B, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, rope_scaling: { type: 'mrope', mrope_section: [1, 1, 2] }, image_token_id: 290, video_token_id: 291, vision_start_token_id: 288, vision_end_token_id: 289, vision_config: { depth: 2, embed_dim: 16, mlp_ratio: 2, num_heads: 2, in_chans: 3, hidden_size: 32, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 } };
const TINY_25 = { ...TINY_2, model_type: 'qwen2_5_vl', tie_word_embeddings: false, vision_config: { depth: 3, hidden_size: 16, intermediate_size: 24, num_heads: 2, in_chans: 3, out_hidden_size: 32, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, window_size: 56, fullatt_block_indexes: [2] } };

test('tiny checkpoints in the HF layout match their tables, in either spelling of the names', async () => {
  for (const [name, json, rename] of [
    ['qwen2', TINY_2, (n: string) => n],
    ['qwen25', TINY_25, (n: string) => n],
    ['qwen25-new-names', TINY_25, (n: string) => n.replace(/^model\./, 'model.language_model.').replace(/^visual\./, 'model.visual.')],
  ] as const) {
    const dir = tinyCheckpoint(name, json, rename);
    const cfg = readQwenConfig(dir);
    const ck = await openHfCheckpoint(dir);
    try {
      const names = matchWeights(cfg, ck);
      expect(names.size).toBe(weightTable(cfg).length);
      expect(names.has('lm_head.weight')).toBe(!cfg.text.tieEmbeddings);
      const w = await ck.readFloat32(names.get('visual.merger.mlp.2.weight')!);
      expect(w.length).toBe(32 * 64);
    } finally {
      await ck.close();
    }
  }
});

test('a missing, extra, misshapen or doubly spelled tensor is named with its file', async () => {
  const check = async (dir: string, re: RegExp): Promise<void> => {
    const ck = await openHfCheckpoint(dir);
    try {
      expect(() => matchWeights(readQwenConfig(dir), ck)).toThrow(re);
    } finally {
      await ck.close();
    }
  };
  await check(tinyCheckpoint('missing', TINY_2, undefined, 'model.layers.1.mlp.up_proj.weight'), /missing tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/);
  await check(tinyCheckpoint('shape', TINY_2, undefined, undefined, 'visual.blocks.0.attn.qkv.weight'), /model-0000\d-of-00002\.safetensors: tensor 'visual\.blocks\.0\.attn\.qkv\.weight' has shape \[16,48\] but the config needs \[48,16\]/);
  // a Qwen2.5-VL checkpoint with a Qwen2-VL config.json: its SwiGLU vision weights are unexpected
  const swapped = tinyCheckpoint('swapped', TINY_25);
  fs.writeFileSync(path.join(swapped, 'config.json'), JSON.stringify({ ...TINY_2, vision_config: { ...TINY_2.vision_config, depth: 3, embed_dim: 16 } }));
  await check(swapped, /unexpected tensor 'visual\.blocks\.0\.mlp\.(gate|up|down)_proj\.(weight|bias)' for this qwen2_vl config|missing tensor 'visual\.blocks\.0\.norm1\.bias'/);
  const both = tinyCheckpoint('both', TINY_2);
  writeSafetensorsSync(path.join(both, 'model.safetensors'), []); // ignored: the index wins
  const idx = JSON.parse(fs.readFileSync(path.join(both, 'model.safetensors.index.json'), 'utf8'));
  writeSafetensorsSync(path.join(both, 'extra.safetensors'), [{ name: 'model.language_model.norm.weight', shape: [32], data: new Float32Array(32) }]);
  idx.weight_map['model.language_model.norm.weight'] = 'extra.safetensors';
  fs.writeFileSync(path.join(both, 'model.safetensors.index.json'), JSON.stringify(idx));
  await check(both, /tensors 'model\.norm\.weight' and 'model\.language_model\.norm\.weight' are the same weight spelled two ways/);
});

test('the reference fixtures (python/reference, written as transformers lays checkpoints out) load and match their tables', async () => {
  for (const name of ['qwen2_vl_tiny', 'qwen2_vl_tiny_bf16', 'qwen2_5_vl_tiny']) {
    const dir = path.join(__dirname, '../../fixtures', name);
    const cfg = readQwenConfig(dir);
    const ck = await openHfCheckpoint(dir);
    try {
      expect(matchWeights(cfg, ck).size).toBe(weightTable(cfg).length);
      expect(new Set([...ck.tensors.values()].map((t) => t.dtype))).toEqual(new Set([name.endsWith('bf16') ? 'BF16' : 'F32']));
    } finally {
      await ck.close();
    }
    const expected = JSON.parse(fs.readFileSync(path.join(dir.replace(/_bf16$/, ''), 'expected.json'), 'utf8')) as { special_tokens: Record<string, number> };
    const sp = expected.special_tokens;
    expect(cfg.tokens).toEqual({ image: sp['<|image_pad|>'], video: sp['<|video_pad|>'], visionStart: sp['<|vision_start|>'], visionEnd: sp['<|vision_end|>'] });
  }
});
