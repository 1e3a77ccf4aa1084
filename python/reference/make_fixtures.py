"""Writes the tiny Qwen2-VL / Qwen2.5-VL fixtures of medgym's native engine tests and checks the reference.

    /usr/bin/python3 python/reference/make_fixtures.py          # (re)writes test/fixtures/qwen2*_vl_tiny*/

Deterministic: re-running it rewrites byte-identical files (seeded generators, one thread, integer-built
images, floats written as the shortest decimal that reads back to the same float32).
Exits non-zero if any self-check fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen2_vl import (  # noqa: E402
    Qwen2_5_VLVisionConfig,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLTextConfig,
    Qwen2VLVisionConfig,
    Qwen2RMSNorm,
    expand_image_tokens,
    greedy_generate,
    greedy_generate_nocache,
    pil_resize_bicubic,
    token_logprobs,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "test", "fixtures")
torch.set_num_threads(1)

# ---- the tiny vocabulary: 496 ordinary ids, then Qwen's special tokens in Qwen's order (151643 + k → 496 + k)
VOCAB = 512
SPECIAL = {
    "<|endoftext|>": 496, "<|im_start|>": 497, "<|im_end|>": 498, "<|object_ref_start|>": 499, "<|object_ref_end|>": 500,
    "<|box_start|>": 501, "<|box_end|>": 502, "<|quad_start|>": 503, "<|quad_end|>": 504, "<|vision_start|>": 505,
    "<|vision_end|>": 506, "<|vision_pad|>": 507, "<|image_pad|>": 508, "<|video_pad|>": 509,
}
PAD = SPECIAL["<|endoftext|>"]
VS, VE, IMG = SPECIAL["<|vision_start|>"], SPECIAL["<|vision_end|>"], SPECIAL["<|image_pad|>"]
MAX_NEW = 8


def text_config(tied: bool) -> Qwen2VLTextConfig:
    return Qwen2VLTextConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=tied, rope_theta=1000000.0, sliding_window=4096,
        max_window_layers=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim/2 = 8
    )


def model_config(family: str) -> Qwen2VLConfig:
    if family == "qwen2_vl":
        vision = Qwen2VLVisionConfig(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=4)
        tc = text_config(tied=True)
    else:
        # window_size 56 px = 2 merged units (4 patches) per side: the 56×84 image has 2 windows, 112×112 has 4
        vision = Qwen2_5_VLVisionConfig(depth=4, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                                        window_size=56, fullatt_block_indexes=[1, 3], tokens_per_second=2)
        tc = text_config(tied=False)
    return Qwen2VLConfig(
        model_type=family, text_config=tc, vision_config=vision, image_token_id=IMG, video_token_id=SPECIAL["<|video_pad|>"],
        vision_start_token_id=VS, vision_end_token_id=VE, vision_token_id=SPECIAL["<|vision_pad|>"], bos_token_id=PAD,
        eos_token_id=SPECIAL["<|im_end|>"],
    )


PROCESSOR = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 1280)


def init_weights(model: torch.nn.Module, seed: int):
    """Seeded random weights, every value exactly representable in bfloat16 (so the F32 and BF16 files hold the
    same model). Norm weights ≈ 1 ± 0.1, biases ± 0.05, Linear/Conv ~ N(0, 1/fan_in), embeddings/lm_head ~ N(0, 0.5²)."""
    g = torch.Generator().manual_seed(seed)
    owner = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owner[f"{mname}.{pname}" if mname else pname] = mod
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            mod = owner[name]
            r = torch.randn(p.shape, generator=g)
            if isinstance(mod, (torch.nn.LayerNorm, Qwen2RMSNorm)):
                v = 1 + 0.1 * r if name.endswith("weight") else 0.05 * r
            elif name.endswith("bias"):
                v = 0.05 * r
            elif isinstance(mod, torch.nn.Embedding) or name == "lm_head.weight":
                v = 0.5 * r
            else:
                fan_in = int(np.prod(p.shape[1:]))
                v = r / fan_in ** 0.5
            p.copy_(v.to(torch.bfloat16).to(torch.float32))


# ---- files --------------------------------------------------------------------------------------------


def f32(x) -> float:
    """The shortest decimal that reads back to the same float32 (JSON numbers: parse, then Math.fround)."""
    v = np.float32(x)
    assert not np.isinf(v)
    return None if np.isnan(v) else float(repr(v))


def f32list(t) -> list:
    return [f32(v) for v in np.asarray(t, dtype=np.float32).reshape(-1)]


def safetensors_bytes(tensors: dict, metadata: dict) -> bytes:
    """tensors: name → (dtype "F32"|"BF16"|"U8", shape, raw little-endian bytes); names sorted, data 8-aligned
    header (padded with spaces), as the reference writer."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dt, shape, raw = tensors[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    header = {"__metadata__": metadata, **header}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def tensor_entry(t: torch.Tensor, dtype: str):
    a = t.detach().contiguous().numpy()
    if dtype == "F32":
        raw = a.astype("<f4").tobytes()
    elif dtype == "BF16":  # the values are bf16-exact: keep the high half of each float32
        bits = a.astype("<f4").view("<u4")
        assert np.all(bits & 0xFFFF == 0)
        raw = (bits >> 16).astype("<u2").tobytes()
    else:
        raw = a.astype(np.uint8).tobytes()
    return dtype, list(a.shape), raw


def to_json(v, ind: str = "") -> str:
    """JSON with objects indented and lists of numbers on one line (small, diffable files)."""
    if isinstance(v, dict):
        if not v:
            return "{}"
        inner = ind + "  "
        return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {to_json(x, inner)}" for k, x in v.items()) + "\n" + ind + "}"
    if isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v):
        inner = ind + "  "
        return "[\n" + ",\n".join(inner + to_json(x, inner) for x in v) + "\n" + ind + "]"
    return json.dumps(v, separators=(",", ":")) if isinstance(v, list) else json.dumps(v)


def write(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not isinstance(data, bytes):
        data = (to_json(data) + "\n").encode()
    with open(path, "wb") as f:
        f.write(data)


def checkpoint_tensors(model: Qwen2VLForConditionalGeneration) -> dict:
    """The tensors a Hub checkpoint holds: state_dict names; no lm_head.weight when the embeddings are tied."""
    sd = model.state_dict()
    if model.config.text_config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def write_checkpoint(out_dir: str, model, dtype: str, torch_dtype: str, family: str):
    sd = checkpoint_tensors(model)
    shard_names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shards = [{}, {}]
    for name, t in sd.items():  # shard 1: the language model; shard 2: the vision tower and lm_head
        shards[0 if name.startswith("model.") else 1][name] = tensor_entry(t, dtype)
    total = 0
    for fname, tensors in zip(shard_names, shards):
        write(os.path.join(out_dir, fname), safetensors_bytes(tensors, {"format": "pt"}))
        total += sum(len(v[2]) for v in tensors.values())
    weight_map = {n: shard_names[0 if n.startswith("model.") else 1] for n in sorted(sd)}
    write(os.path.join(out_dir, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})
    write(os.path.join(out_dir, "config.json"), model.config.to_hub_dict(torch_dtype))
    proc = "Qwen2_5_VLProcessor" if family == "qwen2_5_vl" else "Qwen2VLProcessor"
    write(os.path.join(out_dir, "preprocessor_config.json"), PROCESSOR.to_hub_dict(proc))
    write(os.path.join(out_dir, "generation_config.json"), {
        "bos_token_id": PAD, "pad_token_id": PAD, "do_sample": True, "eos_token_id": [SPECIAL["<|im_end|>"], PAD],
        "repetition_penalty": 1.0, "temperature": 0.01, "top_p": 0.001, "top_k": 1, "transformers_version": "4.49.0",
    })


# ---- inputs -------------------------------------------------------------------------------------------


def make_image(h: int, w: int, seed: int) -> np.ndarray:
    """Integer-only (bit-reproducible everywhere): a diagonal ramp per channel + a block pattern + noise."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), dtype=np.int64)
    for c in range(3):
        img[..., c] = (x * (3 + c) + y * (5 - c) + 60 * c) % 200 + ((x // 7 + y // 9 + c) % 2) * 40
    img += rs.randint(0, 16, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


IMAGES = [  # (height, width): resized by smart_resize to (56, 56) [70/28 = 2.5 rounds half to even; bicubic up & down], (56, 84) [no resize], (112, 112) [down × up]
    (50, 70), (56, 84), (120, 100)
]


def prompts():
    """Three prompts (token ids, one <|image_pad|> per image): 0, 1 and 2 images."""
    rs = np.random.RandomState(7)
    t = lambda n: rs.randint(0, 496, size=n).tolist()  # noqa: E731
    im_s, im_e = SPECIAL["<|im_start|>"], SPECIAL["<|im_end|>"]
    p0 = [im_s] + t(9) + [im_e, im_s] + t(2)
    p1 = [im_s] + t(3) + [VS, IMG, VE] + t(5) + [im_e, im_s] + t(1)
    p2 = [im_s] + t(2) + [VS, IMG, VE] + t(2) + [VS, IMG, VE] + t(4) + [im_e, im_s] + t(1)
    return [p0, p1, p2], [[], [0], [1, 2]]


# ---- checks -------------------------------------------------------------------------------------------

CHECKS = []


def check(name: str, ok: bool, detail: str = "") -> None:
    CHECKS.append(name)
    print(f"  [{'ok' if ok else 'FAIL'}] {name} {detail}")
    if not ok:
        raise SystemExit(f"self-check failed: {name} {detail}")


def maxdiff(a, b) -> float:
    return float((a - b).abs().max())


def stats(t: torch.Tensor, n_first: int = 8) -> dict:
    a = t.detach().double().reshape(-1)
    w = (torch.arange(a.numel(), dtype=torch.float64) % 97 + 1)
    idx = torch.linspace(0, a.numel() - 1, 16).round().long()
    return {
        "shape": list(t.shape), "sum": float(a.sum()), "abs_sum": float(a.abs().sum()), "weighted_sum": float((a * w).sum()),
        "weighted_sum_note": "sum of v[i] * (i % 97 + 1) over the row-major flattening",
        "first": f32list(t.reshape(-1)[:n_first]), "samples": [[int(i), f32(t.reshape(-1)[i])] for i in idx],
    }


def check_pil_resize():
    try:
        from PIL import Image
    except ImportError:
        print("  [skip] numpy bicubic == PIL (PIL not installed)")
        return None
    import PIL
    cases = [((h, w), PROCESSOR.resized_size(h, w)) for h, w in IMAGES] + [((37, 61), (28, 84)), ((90, 45), (140, 28)), ((64, 64), (30, 97))]
    for k, ((h, w), (rh, rw)) in enumerate(cases):
        img = make_image(h, w, 100 + k)
        a = pil_resize_bicubic(img, rh, rw)
        b = np.asarray(Image.fromarray(img).resize((rw, rh), resample=Image.BICUBIC))
        check(f"bicubic resize {h}x{w}->{rh}x{rw} equals PIL {PIL.__version__} bit for bit", np.array_equal(a, b),
              f"(max |diff| {int(np.abs(a.astype(int) - b.astype(int)).max())})")
    return PIL.__version__


# ---- one family ---------------------------------------------------------------------------------------


@torch.no_grad()
def build(family: str, seed: int, bf16_dir: str = None):
    print(f"== {family}")
    cfg = model_config(family)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    init_weights(model, seed)
    out_dir = os.path.join(FIX, f"{family}_tiny")
    write_checkpoint(out_dir, model, "F32", "float32", family)
    if bf16_dir:
        write_checkpoint(os.path.join(FIX, bf16_dir), model, "BF16", "bfloat16", family)

    images = [make_image(h, w, 10 + k) for k, (h, w) in enumerate(IMAGES)]
    write(os.path.join(out_dir, "inputs.safetensors"), safetensors_bytes(
        {f"image_{k}": tensor_entry(torch.from_numpy(im), "U8") for k, im in enumerate(images)}, {"layout": "HWC RGB uint8"}))

    raw_prompts, img_of = prompts()
    merge = cfg.vision_config.spatial_merge_size
    _, grid_all = PROCESSOR(images)
    # the batch: sequence b's images in order; pixel_values/grid in order of appearance across the batch
    order = [k for ks in img_of for k in ks]
    pv_list = [PROCESSOR.preprocess_one(images[k])[0] for k in order]
    pixel_values = torch.cat(pv_list, dim=0)
    grid = grid_all[order]
    seqs, gi = [], 0
    for b, p in enumerate(raw_prompts):
        seqs.append(expand_image_tokens(p, grid[gi:gi + len(img_of[b])] if img_of[b] else None, IMG, merge))
        gi += len(img_of[b])
    for b, s in enumerate(seqs):
        want = sum(int(grid_all[k].prod()) // merge ** 2 for k in img_of[b])
        check(f"seq {b}: <|image_pad|> count {s.count(IMG)} == merged patches {want}", s.count(IMG) == want)
    T = max(len(s) for s in seqs)
    input_ids = torch.tensor([[PAD] * (T - len(s)) + s for s in seqs])
    attn = torch.tensor([[0] * (T - len(s)) + [1] * len(s) for s in seqs])

    # -- vision checks
    vis = model.visual
    pe = vis.patch_embed
    check("patch embed: Conv3d == Linear on flattened patches", maxdiff(pe(pixel_values), pe.forward_as_linear(pixel_values)) < 1e-5)
    emb, dbg = vis(pixel_values, grid, return_debug=True)
    check(f"vision: merged tokens {emb.shape[0]} == image pads {int((input_ids == IMG).sum())}", emb.shape[0] == int((input_ids == IMG).sum()))
    per = torch.cat([vis(PROCESSOR.preprocess_one(images[k])[0], grid_all[k:k + 1]) for k in order])
    check("vision: images together == each alone", maxdiff(emb, per) < 1e-5, f"({maxdiff(emb, per):.2e})")
    d = maxdiff(emb, vis.forward_masked(pixel_values, grid))
    check("vision: HF path (window permutation + cu_seqlens) == explicit-mask path in raster order", d < 1e-5, f"({d:.2e})")
    if cfg.is_2_5:
        nwin = len(dbg["cu_window_seqlens"]) - 1
        check(f"qwen2.5 window attention: {nwin} windows for {len(order)} images (several per image)", nwin > len(order))
        wi = torch.tensor(dbg["window_index"])
        check("window index is a permutation, argsort inverts it", torch.equal(wi[torch.argsort(wi)], torch.arange(wi.numel())))
        big = 14 * 2 * 16  # 16 merged units per window side: bigger than every image
        a = vis(pixel_values, grid, window_size=big)
        b_ = vis(pixel_values, grid, fullatt_block_indexes=list(range(cfg.vision_config.depth)))
        check("window covering the whole image == full attention", maxdiff(a, b_) < 1e-5, f"({maxdiff(a, b_):.2e})")
        check("window attention changes the result (windows < image)", maxdiff(emb, b_) > 1e-3)

    # -- batch forward
    logits, pos, deltas = model(input_ids, attn, pixel_values, grid)
    lp = token_logprobs(logits, input_ids, attn)
    gen, gen_logits = greedy_generate(model, input_ids, attn, pixel_values, grid, MAX_NEW)
    gen_nc, gen_logits_nc = greedy_generate_nocache(model, input_ids, attn, pixel_values, grid, MAX_NEW)
    check("batch: cached greedy == uncached greedy", torch.equal(gen, gen_nc), f"(logits {maxdiff(gen_logits, gen_logits_nc):.2e})")
    check("batch: cached step logits ≈ uncached", maxdiff(gen_logits, gen_logits_nc) < 1e-4)
    top2 = gen_logits.topk(2, dim=-1).values
    margin = float((top2[..., 0] - top2[..., 1]).min())
    check(f"greedy steps are not near-ties (min top-1 − top-2 logit {margin:.3f})", margin > 1e-2)
    gen_lp = torch.log_softmax(gen_logits, -1).gather(-1, gen.t()[..., None]).squeeze(-1).t()  # (B, N)

    # -- each sequence alone
    singles = []
    for b, s in enumerate(seqs):
        ids1 = torch.tensor([s])
        ks = img_of[b]
        pv1 = torch.cat([PROCESSOR.preprocess_one(images[k])[0] for k in ks]) if ks else None
        g1 = grid_all[ks] if ks else None
        lg1, pos1, d1 = model(ids1, None, pv1, g1)
        lp1 = token_logprobs(lg1, ids1, torch.ones_like(ids1))
        pad = T - len(s)
        dd = float(np.nanmax(np.abs(lp1[0, 1:].numpy() - lp[b, pad + 1:].numpy())))
        check(f"seq {b}: alone == in the batch (log-probs)", dd < 1e-5, f"({dd:.2e})")
        check(f"seq {b}: alone == in the batch (positions)", torch.equal(pos1[:, 0], pos[:, b, pad:]))
        g1s, g1l = greedy_generate(model, ids1, torch.ones_like(ids1), pv1, g1, MAX_NEW)
        check(f"seq {b}: alone == in the batch (greedy ids)", torch.equal(g1s[0], gen[b]))
        g1n, _ = greedy_generate_nocache(model, ids1, torch.ones_like(ids1), pv1, g1, MAX_NEW)
        check(f"seq {b}: alone, cached == uncached greedy", torch.equal(g1s, g1n))
        singles.append({
            "input_ids": s, "image_indices": ks, "image_grid_thw": g1.tolist() if ks else [],
            "position_ids": pos1[:, 0].tolist(), "rope_deltas": d1.view(-1).tolist(),
            "logprobs": f32list(lp1[0]), "generated_ids": g1s[0].tolist(),
        })

    # the full (prompt + generated) sequences re-scored in one forward give the generation's log-probs
    full_ids = torch.cat([input_ids, gen], 1)
    full_mask = torch.cat([attn, torch.ones_like(gen)], 1)
    flg, fpos, _ = model(full_ids, full_mask, pixel_values, grid)
    flp = token_logprobs(flg, full_ids, full_mask)[:, T:]
    check("prompt + generated re-scored == generation log-probs", maxdiff(flp, gen_lp) < 1e-4, f"({maxdiff(flp, gen_lp):.2e})")
    dec_pos = (T + torch.arange(MAX_NEW))[None, :] + deltas  # decode positions: cache_position + rope delta
    check("decode positions (cache length + delta) == get_rope_index of the full sequence", torch.equal(fpos[0, :, T:], dec_pos[:, :]) and torch.equal(fpos[1, :, T:], dec_pos))

    # -- logits of a few positions per sequence: the last prompt token, the first image token (or first
    #    real token) and a middle token
    logit_rows = []
    for b, s in enumerate(seqs):
        pad = T - len(s)
        first_img = next((i for i in range(pad, T) if int(input_ids[b, i]) == IMG), pad)
        for t in sorted({T - 1, first_img, pad + len(s) // 2}):
            logit_rows.append({"batch_index": b, "position": t, "position_alone": t - pad, "logits": f32list(logits[b, t])})

    expected = {
        "format": "medgym qwen2-vl reference fixture v1",
        "generator": "python/reference/make_fixtures.py (python/reference/qwen2_vl.py)",
        "torch_version": torch.__version__.split("+")[0],
        "family": family,
        "compute_dtype": "float32 (weights are bfloat16-exact, so the BF16 checkpoint holds the same model)" if bf16_dir else "float32",
        "bf16_checkpoint": f"test/fixtures/{bf16_dir}" if bf16_dir else None,
        "vocab_size": VOCAB,
        "special_tokens": SPECIAL,
        "images": [
            {"tensor": f"image_{k}", "file": "inputs.safetensors", "height": h, "width": w,
             "resized_height": PROCESSOR.resized_size(h, w)[0], "resized_width": PROCESSOR.resized_size(h, w)[1],
             "image_grid_thw": grid_all[k].tolist(), "num_image_tokens": int(grid_all[k].prod()) // merge ** 2,
             "pixel_values": stats(PROCESSOR.preprocess_one(images[k])[0]),
             "pixel_values_first_patch": f32list(PROCESSOR.preprocess_one(images[k])[0][0])}
            for k, (h, w) in enumerate(IMAGES)
        ],
        "batch": {
            "padding_side": "left", "pad_token_id": PAD,
            "image_indices": img_of,
            "input_ids": input_ids.tolist(), "attention_mask": attn.tolist(),
            "image_grid_thw": grid.tolist(),
            "pixel_values": stats(pixel_values),
            "vision": {"cu_seqlens": dbg["cu_seqlens"], **({"window_index": dbg["window_index"], "cu_window_seqlens": dbg["cu_window_seqlens"]} if cfg.is_2_5 else {})},
            "image_embeds": {**stats(emb), "rows": [{"row": r, "values": f32list(emb[r])} for r in (0, emb.shape[0] - 1)]},
            "position_ids": pos.tolist(),
            "rope_deltas": deltas.view(-1).tolist(),
            "logits": logit_rows,
            "logprobs": [f32list(r) for r in lp],
            "logprobs_note": "logprobs[b][t] = log_softmax(logits[b][t-1])[input_ids[b][t]]; null at t = 0, padding and the first real token",
            "generated_ids": gen.tolist(),
            "generated_logprobs": [f32list(r) for r in gen_lp],
            "decode_position_ids": dec_pos.tolist(),
            "max_new_tokens": MAX_NEW,
            "generation_note": "greedy, exactly max_new_tokens tokens (no stop on EOS), KV cache; equal to the no-cache recompute",
        },
        "single": singles,
        "tolerances": {"logits_abs": 1e-4, "logprobs_abs": 1e-4, "image_embeds_abs": 1e-4, "pixel_values_abs": 1e-6,
                       "note": "float32 reference; suggested tolerances for a float32 implementation"},
        "checks": CHECKS[:],
    }
    write(os.path.join(out_dir, "expected.json"), expected)
    CHECKS.clear()


def main():
    print("== image processor")
    pil = check_pil_resize()
    for (h, w), want in zip(IMAGES, [(56, 56), (56, 84), (112, 112)]):
        check(f"smart_resize {h}x{w} -> {want}", PROCESSOR.resized_size(h, w) == want)
    CHECKS.clear()
    build("qwen2_vl", seed=1234, bf16_dir="qwen2_vl_tiny_bf16")
    build("qwen2_5_vl", seed=4322)
    total = 0
    for d in ("qwen2_vl_tiny", "qwen2_vl_tiny_bf16", "qwen2_5_vl_tiny"):
        for f in sorted(os.listdir(os.path.join(FIX, d))):
            p = os.path.join(FIX, d, f)
            data = open(p, "rb").read()
            total += len(data)
            print(f"  {d}/{f}: {len(data)} bytes sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    print(f"all checks passed; {total} bytes written" + (f"; bicubic checked against PIL {pil}" if pil else ""))


if __name__ == "__main__":
    main()
