// The model architectures medgym runs, and how far each is supported: what `medgym doctor` lists and
// the README's table repeats.
export interface Architecture {
  /** config.json `model_type` (medgym-vlm: medgym's own checkpoints). */
  modelType: string;
  /** config.json `architectures` entry of Hugging Face checkpoints. */
  hfClass?: string;
  /** What runs today. */
  support: string;
}

export const ARCHITECTURES: readonly Architecture[] = [
  { modelType: 'medgym-vlm', support: 'native CPU + CUDA: SFT, GRPO, sessions, eval (the embedded default)' },
  {
    modelType: 'qwen2_vl',
    hfClass: 'Qwen2VLForConditionalGeneration',
    support: 'native CPU inference from a model directory (F32/BF16/F16 weights, computed in fp32): image encoding, per-token log-probs, KV-cache generation and sessions; medgym eval --model',
  },
  {
    modelType: 'qwen2_5_vl',
    hfClass: 'Qwen2_5_VLForConditionalGeneration',
    support: 'as qwen2_vl, with window attention in the vision tower',
  },
];
