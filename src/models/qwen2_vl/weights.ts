// The weight table of a Qwen2-VL / Qwen2.5-VL checkpoint: every tensor name (as the Hub checkpoints
// name them) with the shape the config implies, and the check of a model directory's tensors against
// it, before any data is read. Newer transformers save `model.language_model.*` and `model.visual.*`
// for the Hub's `model.*` and `visual.*`: both spellings are accepted.
import type { HfCheckpoint } from '../hf_checkpoint';
import { CheckpointError } from '../hf_checkpoint';
import type { QwenVLConfig } from './config';

export interface WeightSpec {
  name: string;
  shape: number[];
}

/** The tensors of `c`, in a fixed order (vision tower, merger, language model, head). */
export function weightTable(c: QwenVLConfig): WeightSpec[] {
  const out: WeightSpec[] = [];
  const add = (name: string, ...shape: number[]): void => void out.push({ name, shape });
  const v = c.vision;
  const t = c.text;
  add('visual.patch_embed.proj.weight', v.dim, v.inChannels, v.temporalPatch, v.patch, v.patch);
  for (let i = 0; i < v.depth; i++) {
    const b = `visual.blocks.${i}.`;
    add(`${b}norm1.weight`, v.dim);
    if (v.block === 'layernorm_gelu') add(`${b}norm1.bias`, v.dim);
    add(`${b}norm2.weight`, v.dim);
    if (v.block === 'layernorm_gelu') add(`${b}norm2.bias`, v.dim);
    add(`${b}attn.qkv.weight`, 3 * v.dim, v.dim);
    add(`${b}attn.qkv.bias`, 3 * v.dim);
    add(`${b}attn.proj.weight`, v.dim, v.dim);
    add(`${b}attn.proj.bias`, v.dim);
    if (v.block === 'layernorm_gelu') {
      add(`${b}mlp.fc1.weight`, v.mlpHidden, v.dim);
      add(`${b}mlp.fc1.bias`, v.mlpHidden);
      add(`${b}mlp.fc2.weight`, v.dim, v.mlpHidden);
      add(`${b}mlp.fc2.bias`, v.dim);
    } else {
      for (const p of ['gate_proj', 'up_proj']) {
        add(`${b}mlp.${p}.weight`, v.mlpHidden, v.dim);
        add(`${b}mlp.${p}.bias`, v.mlpHidden);
      }
      add(`${b}mlp.down_proj.weight`, v.dim, v.mlpHidden);
      add(`${b}mlp.down_proj.bias`, v.dim);
    }
  }
  const merged = v.dim * v.merge * v.merge;
  add('visual.merger.ln_q.weight', v.dim);
  if (v.block === 'layernorm_gelu') add('visual.merger.ln_q.bias', v.dim);
  add('visual.merger.mlp.0.weight', merged, merged);
  add('visual.merger.mlp.0.bias', merged);
  add('visual.merger.mlp.2.weight', v.outHidden, merged);
  add('visual.merger.mlp.2.bias', v.outHidden);
  add('model.embed_tokens.weight', t.vocabSize, t.hidden);
  const kv = t.kvHeads * t.headDim;
  for (let i = 0; i < t.layers; i++) {
    const l = `model.layers.${i}.`;
    add(`${l}input_layernorm.weight`, t.hidden);
    add(`${l}self_attn.q_proj.weight`, t.hidden, t.hidden);
    add(`${l}self_attn.q_proj.bias`, t.hidden);
    add(`${l}self_attn.k_proj.weight`, kv, t.hidden);
    add(`${l}self_attn.k_proj.bias`, kv);
    add(`${l}self_attn.v_proj.weight`, kv, t.hidden);
    add(`${l}self_attn.v_proj.bias`, kv);
    add(`${l}self_attn.o_proj.weight`, t.hidden, t.hidden);
    add(`${l}post_attention_layernorm.weight`, t.hidden);
    add(`${l}mlp.gate_proj.weight`, t.intermediate, t.hidden);
    add(`${l}mlp.up_proj.weight`, t.intermediate, t.hidden);
    add(`${l}mlp.down_proj.weight`, t.hidden, t.intermediate);
  }
  add('model.norm.weight', t.hidden);
  if (!t.tieEmbeddings) add('lm_head.weight', t.vocabSize, t.hidden);
  return out;
}

/** The Hub's spelling of a tensor name saved by newer transformers (`model.language_model.x` → `model.x`, `model.visual.x` → `visual.x`). */
export function hubName(name: string): string {
  return name.replace(/^model\.language_model\./, 'model.').replace(/^model\.visual\./, 'visual.');
}

/** Parameters of the model `c` describes. */
export function parameterCount(c: QwenVLConfig): number {
  return weightTable(c).reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * Checks a checkpoint against the table: every tensor present once (in either spelling), nothing
 * unexpected (a tied model may still carry lm_head.weight), shapes equal, dtype F32/BF16/F16.
 * Returns the file name of each table entry. Throws a CheckpointError naming the tensor and the file.
 */
export function matchWeights(c: QwenVLConfig, ck: HfCheckpoint): Map<string, string> {
  const byHub = new Map<string, string>();
  for (const name of ck.tensors.keys()) {
    const h = hubName(name);
    const prev = byHub.get(h);
    if (prev !== undefined) throw new CheckpointError(`${ck.dir}: tensors '${prev}' and '${name}' are the same weight spelled two ways`);
    byHub.set(h, name);
  }
  const table = weightTable(c);
  const wanted = new Set(table.map((w) => w.name));
  for (const [h, name] of byHub) {
    if (wanted.has(h) || (h === 'lm_head.weight' && c.text.tieEmbeddings)) continue;
    throw new CheckpointError(`${ck.tensors.get(name)!.file}: unexpected tensor '${name}' for this ${c.family} config`);
  }
  const out = new Map<string, string>();
  for (const w of table) {
    const name = byHub.get(w.name);
    if (name === undefined) throw new CheckpointError(`${ck.dir}: missing tensor '${w.name}'`);
    const t = ck.tensors.get(name)!;
    if (t.shape.length !== w.shape.length || t.shape.some((s, i) => s !== w.shape[i])) {
      throw new CheckpointError(`${t.file}: tensor '${name}' has shape [${t.shape}] but the config needs [${w.shape}]`);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'BF16' && t.dtype !== 'F16') throw new CheckpointError(`${t.file}: tensor '${name}' has dtype ${t.dtype} (F32, BF16 or F16 expected)`);
    out.set(w.name, name);
  }
  return out;
}
