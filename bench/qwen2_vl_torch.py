"""PyTorch eager peer of bench/qwen2_vl.ts: the plain-PyTorch reference (python/reference) of a Qwen2-VL
model with random weights, timed on the same workload. Argument: one JSON object
  {threads, dtype: "bf16" | "fp32", config: <Hub config.json>, ids: [...], decode_prompt: [...],
   decode_new, batches: [1, 16], runs, seed}
Prints one JSON line last: seconds per row and the peak RSS.

Two departures from the reference's own forward, both for bf16 (HF does the same): a matmul of a float32
and a bf16 operand (the reference keeps softmax and rotated q/k in float32) runs in the weights' dtype,
and the patch embedding runs as the equivalent Linear (PatchEmbed.forward_as_linear: Conv3d has no fast
bf16 CPU path in torch 1.13). fp32 runs take the same path. The model is built layer by layer, each
converted as soon as it exists, so that no float32 copy of the whole model is ever held.
"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "reference"))
import qwen2_vl_text  # noqa: E402
import qwen2_vl_vision  # noqa: E402
from qwen2_vl import (  # noqa: E402
    PatchEmbed,
    Qwen2VLConfig,
    Qwen2VLDecoderLayer,
    Qwen2VLForConditionalGeneration,
    Qwen2VLTextConfig,
    Qwen2VLVisionBlock,
    Qwen2VLVisionConfig,
    get_rope_index,
)

A = json.loads(sys.argv[1])
DTYPE = {"bf16": torch.bfloat16, "fp32": torch.float32}[A["dtype"]]
torch.set_num_threads(int(A["threads"]))


class _Torch:
    """The torch module for the reference's attention code, with matmul of mixed dtypes in DTYPE."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def matmul(a, b):
        if a.dtype != b.dtype:
            a, b = a.to(DTYPE), b.to(DTYPE)
        return torch.matmul(a, b)


qwen2_vl_text.torch = _Torch()
qwen2_vl_vision.torch = _Torch()
PatchEmbed.forward = lambda self, x: self.forward_as_linear(x.to(self.proj.weight.dtype))


def hub_config(j):
    v = j["vision_config"]
    text = Qwen2VLTextConfig(
        vocab_size=j["vocab_size"], hidden_size=j["hidden_size"], intermediate_size=j["intermediate_size"],
        num_hidden_layers=j["num_hidden_layers"], num_attention_heads=j["num_attention_heads"],
        num_key_value_heads=j["num_key_value_heads"], rms_norm_eps=j["rms_norm_eps"], rope_theta=j["rope_theta"],
        tie_word_embeddings=j["tie_word_embeddings"], rope_scaling=j["rope_scaling"])
    vision = Qwen2VLVisionConfig(
        depth=v["depth"], embed_dim=v["embed_dim"], hidden_size=v["hidden_size"], mlp_ratio=v["mlp_ratio"],
        num_heads=v["num_heads"], in_channels=v["in_chans"], patch_size=v["patch_size"],
        spatial_merge_size=v["spatial_merge_size"], temporal_patch_size=v["temporal_patch_size"])
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=j["image_token_id"],
                         video_token_id=j["video_token_id"], vision_start_token_id=j["vision_start_token_id"],
                         vision_end_token_id=j["vision_end_token_id"])


def init_(module):
    """N(0, 0.02) matrices and embeddings, norm weights 1, biases 0 (as QwenVLModel.random)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name or "ln_q" in name:
                p.fill_(1)
            else:
                p.normal_(0, 0.02)
    return module


def build(cfg):
    skip = lambda self: None  # noqa: E731  (init_ draws every tensor)
    for cls in (nn.Linear, nn.Embedding, nn.Conv3d):
        cls.reset_parameters = skip
    L, depth = cfg.text_config.num_hidden_layers, cfg.vision_config.depth
    cfg.text_config.num_hidden_layers, cfg.vision_config.depth = 0, 0
    model = init_(Qwen2VLForConditionalGeneration(cfg).to(DTYPE))
    cfg.text_config.num_hidden_layers, cfg.vision_config.depth = L, depth
    for _ in range(L):
        model.model.layers.append(init_(Qwen2VLDecoderLayer(cfg.text_config).to(DTYPE)))
    for _ in range(depth):
        model.visual.blocks.append(init_(Qwen2VLVisionBlock(cfg.vision_config).to(DTYPE)))
    return model.eval()


def best(fn, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


@torch.no_grad()
def main():
    cfg = hub_config(A["config"])
    torch.manual_seed(A.get("seed", 0))
    t0 = time.perf_counter()
    model = build(cfg)
    build_s = time.perf_counter() - t0
    vc = cfg.vision_config
    merged = 256  # per image: a 448×448 image is a 32×32 patch grid
    side = int((merged * vc.spatial_merge_size ** 2) ** 0.5)
    grid = torch.tensor([[1, side, side], [1, side, side]])
    patch_len = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
    pixels = torch.randn(2 * side * side, patch_len)
    ids = torch.tensor([A["ids"]])
    runs = int(A["runs"])
    W = model.lm_head_weight()
    out = {"dtype": A["dtype"], "threads": torch.get_num_threads(), "build_s": build_s}

    out["vision_s"] = best(lambda: model.visual(pixels, grid), runs)

    def prefill():  # vision + decoder + the last row's logits (as ours: lastLogits)
        pos, _ = get_rope_index(cfg, ids, grid)
        x = model.embed(ids, pixels, grid)
        t = ids.shape[1]
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None]
        h = model.model(x, pos, mask, [[None, None] for _ in model.model.layers])
        return h[:, -1] @ W.t()

    out["prefill_s"] = best(prefill, runs)

    def score():  # forward (every row's logits) + log_softmax + gather, eager
        logits, _, _ = model(ids, None, pixels, grid)
        lp = torch.log_softmax(logits.float(), dim=-1)
        return lp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)

    out["score_s"] = best(score, runs)

    n_new = int(A["decode_new"])
    out["decode_s"] = {}
    for B in A["batches"]:
        prompt = torch.tensor([A["decode_prompt"]] * B)

        def decode():
            caches = [[None, None] for _ in model.model.layers]
            mask = torch.ones_like(prompt)
            logits, _, deltas = model(prompt, mask, caches=caches)
            tok = logits[:, -1].argmax(-1)
            t = time.perf_counter()
            for _ in range(n_new):  # n_new decoder steps, each with its logits and greedy pick
                pos = (mask.shape[1] + deltas).view(1, -1, 1).expand(3, -1, 1)
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], dim=1)
                tok = model.decode_step(tok[:, None], mask, pos, caches)[:, -1].argmax(-1)
            return time.perf_counter() - t

        out["decode_s"][str(B)] = min(decode() for _ in range(runs))
    out["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


main()
