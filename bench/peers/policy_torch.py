"""PyTorch eager peer for bench/policy.bench.ts: the SPEC §1 policy (bench/peers/medgym_vlm.py) loaded
from medgym's own checkpoint.

The JSON argument (see bench/policy.bench.ts) may ask for, in this order:
- "batch": a safetensors file written by the TS side, in token space (as NativePolicy.forward):
  `ids` I32 [B, L] (one <|image|> id per image, right-padded), `lengths` I32 [B], `images` U8
  [n, S, S, C] (the views, in order of their <|image|> tokens), `mask` F32 [B, L] (scored tokens),
  `logp` and `entropy` F32 [B, L] (medgym's). The peer recomputes both and reports max |Δ| over
  the mask (`agree`); it refuses to time anything when logp disagrees by more than `tol`. Tensors
  `grad.<name>` (medgym's gradient of the SFT loss, flat) are compared with PyTorch's (`gradRelDiff`).
- "onnx": a path: exports the log-prob graph (tokens, patch_src, images -> logp over expanded
  positions) there, for onnxruntime-node.
- "forward": time the log-probs of the batch (no grad).
- "train": time one training step as medgym's (crossEntropyBackward + step): forward, backward of
  -mean(logp over mask), clip the global grad norm to 1, AdamW (decay on 2-D tensors only).
- "generate": [{B, promptIds, newTokens, banned, minRuns}]: time greedy decoding with a KV cache
  (prefill included) and the prefill alone, at N threads and at 1 (the faster is reported, with
  its thread count); the views are gen_image(); returns the first sequence's ids for comparison.
Prints one JSON line with everything it measured.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, setup, time_ms  # noqa: E402
from medgym_vlm import IMAGE_ID, expand_ids, load, read_safetensors  # noqa: E402


def read_batch(path, n_patches):
    t, _ = read_safetensors(path)
    rows = [t["ids"][b, :int(t["lengths"][b])].tolist() for b in range(t["ids"].shape[0])]
    tokens, patch_src, tok_pos = expand_ids(rows, n_patches)
    return tokens, patch_src, tok_pos, t


def gen_image(n, cfg):
    """The deterministic test view the TS side uses too: pixel i (HWC order) = (37 i + 11) mod 256."""
    i = torch.arange(cfg.image_size * cfg.image_size * cfg.channels, dtype=torch.int64)
    one = ((37 * i + 11) % 256).to(torch.uint8).reshape(cfg.image_size, cfg.image_size, cfg.channels)
    return one.unsqueeze(0).repeat(n, 1, 1, 1)


class LogprobGraph(torch.nn.Module):
    """What the ONNX export runs: (tokens, patch_src, images) -> logp [B,T] (SPEC §1, τ = 1)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens, patch_src, images):
        return self.model.logprobs(tokens, patch_src, images)


def export_onnx(model, tokens, patch_src, images, path):
    with torch.no_grad():
        torch.onnx.export(
            LogprobGraph(model), (tokens, patch_src, images), path, opset_version=17,
            input_names=["tokens", "patch_src", "images"], output_names=["logp"],
            dynamic_axes={"tokens": {0: "B", 1: "T"}, "patch_src": {0: "B", 1: "T"}, "images": {0: "n"},
                          "logp": {0: "B", 1: "T"}})


def sft_loss(model, tokens, patch_src, images, tok_pos, mask):
    """medgym's crossEntropyBackward loss: -mean of the token log-probs over the mask."""
    lp = model.logprobs(tokens, patch_src, images).gather(1, tok_pos)
    return -(lp * mask).sum() / mask.sum()


def time_generate(model, g):
    cfg = model.cfg
    rows = [list(g["promptIds"])] * g["B"]
    n_img = sum(1 for k in g["promptIds"] if k == IMAGE_ID) * g["B"]
    tokens, patch_src, _ = expand_ids(rows, cfg.n_patches)
    images = gen_image(n_img, cfg)
    banned, runs = g.get("banned", []), g.get("minRuns", 2)
    new = model.generate(tokens, patch_src, images, g["newTokens"], banned=banned)  # also the warmup
    t = time_ms(lambda: model.generate(tokens, patch_src, images, g["newTokens"], banned=banned), warmup=0,
                min_runs=runs, min_time_ms=0)
    caches = model.new_cache(g["B"], tokens.shape[1] + g["newTokens"])

    def prefill():
        with torch.no_grad():
            model(tokens, patch_src, images, caches, 0)
    p = time_ms(prefill, warmup=0, min_runs=runs, min_time_ms=0)
    return {"B": g["B"], "threads": torch.get_num_threads(), "promptPositions": tokens.shape[1],
            "newTokens": g["newTokens"], "greedy": new[0].tolist(), "prefillMs": p["medianMs"], **t}


def main():
    a = setup()
    out = {"threads": torch.get_num_threads()}
    model, _ = load(a["checkpoint"])
    timing = dict(warmup=a.get("warmup", 1), min_runs=a.get("minRuns", 2), min_time_ms=a.get("minTimeMs", 0))

    if "batch" in a:
        tokens, patch_src, tok_pos, b = read_batch(a["batch"], model.cfg.n_patches)
        images, mask = b["images"], b["mask"]
        on = mask > 0
        with torch.no_grad():
            logits = model(tokens, patch_src, images)[:, :-1]
            lsm = torch.log_softmax(logits, -1)
            ent = torch.nn.functional.pad(-(lsm.exp() * lsm).sum(-1), (1, 0)).gather(1, tok_pos)
            lp = torch.nn.functional.pad(lsm.gather(-1, tokens[:, 1:, None])[..., 0], (1, 0)).gather(1, tok_pos)
        d_lp = (lp - b["logp"]).abs()[on]
        d_ent = (ent - b["entropy"]).abs()[on]
        out["agree"] = {"maxAbsDiff": d_lp.max().item(), "meanAbsDiff": d_lp.mean().item(),
                        "entropyMaxAbsDiff": d_ent.max().item(), "n": int(on.sum()), "meanLogp": lp[on].mean().item()}
        if not d_lp.max().item() < a.get("tol", 1e-3):
            emit(out)
            raise SystemExit(f"log-probs disagree with medgym: max |dlogp| = {d_lp.max().item():.3g}")

        # medgym's gradient of the SFT loss (-mean logp over the mask) for a few tensors
        loss = sft_loss(model, tokens, patch_src, images, tok_pos, mask)
        loss.backward()
        out["agree"]["loss"] = loss.item()
        params = dict(model.named_parameters())
        out["gradRelDiff"] = {}
        for key, g in b.items():
            if key.startswith("grad."):
                ref = params[key[5:]].grad.reshape(-1)
                out["gradRelDiff"][key[5:]] = ((g - ref).abs().max() / ref.abs().max()).item()
        model.zero_grad(set_to_none=True)

        if a.get("onnx"):
            export_onnx(model, tokens, patch_src, images, a["onnx"])
            out["onnx"] = a["onnx"]

        if a.get("forward"):
            def fwd():
                with torch.no_grad():
                    model.logprobs(tokens, patch_src, images)
            out["forward"] = time_ms(fwd, **timing)

        if a.get("train"):
            model.train()
            params = list(model.parameters())
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": a.get("weightDecay", 0.01)},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
            opt = torch.optim.AdamW(groups, lr=a.get("lr", 1e-4))

            def step():
                opt.zero_grad(set_to_none=True)
                sft_loss(model, tokens, patch_src, images, tok_pos, mask).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            out["train"] = time_ms(step, **timing)
            model.eval()

    gens = []
    for g in a.get("generate", []):
        # Decoding runs many tiny ops: on a busy machine OpenMP's spinning threads can make eager
        # PyTorch ~10x slower at N threads than at 1, so it gets the better of N and 1 threads.
        best = None
        for th in sorted({out["threads"], 1}, reverse=True):
            torch.set_num_threads(th)
            r = time_generate(model, g)
            if best is None or r["medianMs"] < best["medianMs"]:
                best = r
        torch.set_num_threads(out["threads"])
        gens.append(best)
    if gens:
        out["generate"] = gens
    emit(out)


if __name__ == "__main__":
    main()
