"""PyTorch eager peer for bench/policy.bench.ts: the SPEC §1 policy (bench/peers/medgym_vlm.py) loaded
from medgym's own checkpoint.

The JSON argument (see bench/policy.bench.ts) may ask for, in this order:
- "batch": a safetensors file written by the TS side with `ids` I32 [B, L] (<|image|> ids unexpanded,
  right-padded), `lengths` I32 [B], `images` U8 [n, S, S, C] (the views, in order of their
  <|image|> tokens), `mask` F32 [B, T] (trained positions, expanded) and `logp` F32 [B, T] (medgym's
  log-probs). The peer recomputes the log-probs and reports max |Δ| over the mask (`agree`); it
  refuses to time anything when they disagree by more than `tol`.
- "onnx": a path: exports the log-prob graph (tokens, patch_src, images -> logp) there.
- "forward": time log-probs of the batch (no grad).
- "train": time one training step: forward + backward of -mean(logp over mask) + AdamW.
- "generate": [{checkpoint, B, promptIds, newTokens}]: time greedy decoding with a KV cache.
Prints one JSON line with everything it measured.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, setup, time_ms  # noqa: E402
from medgym_vlm import IMAGE_ID, expand_ids, load, read_safetensors  # noqa: E402


def read_batch(path, n_patches):
    t, _ = read_safetensors(path)
    rows = [t["ids"][b, :int(t["lengths"][b])].tolist() for b in range(t["ids"].shape[0])]
    T = t["mask"].shape[1]
    tokens, patch_src = expand_ids(rows, n_patches, pad_to=T)
    if tokens.shape[1] != T:
        raise SystemExit(f"batch: ids expand to {tokens.shape[1]} positions but mask has {T}")
    return tokens, patch_src, t["images"], t["mask"], t["logp"]


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


def main():
    a = setup()
    out = {"threads": torch.get_num_threads()}
    model, _ = load(a["checkpoint"])
    timing = dict(warmup=1, min_runs=a.get("minRuns", 3), min_time_ms=a.get("minTimeMs", 1500))

    if "batch" in a:
        tokens, patch_src, images, mask, theirs = read_batch(a["batch"], model.cfg.n_patches)
        with torch.no_grad():
            ours = model.logprobs(tokens, patch_src, images)
        on = mask > 0
        diff = (ours - theirs).abs()[on]
        out["agree"] = {"maxAbsDiff": diff.max().item(), "meanAbsDiff": diff.mean().item(), "n": int(on.sum()),
                        "meanLogp": ours[on].mean().item()}
        if not diff.max().item() < a.get("tol", 1e-3):
            emit(out)
            raise SystemExit(f"log-probs disagree with medgym: max |dlogp| = {diff.max().item():.3g}")

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
            opt = torch.optim.AdamW(model.parameters(), lr=a.get("lr", 1e-4), weight_decay=a.get("weightDecay", 0.01))
            n = mask.sum()

            def step():
                opt.zero_grad(set_to_none=True)
                loss = -(model.logprobs(tokens, patch_src, images) * mask).sum() / n
                loss.backward()
                opt.step()
            out["train"] = time_ms(step, **timing)
            model.eval()

    gens = []
    for g in a.get("generate", []):
        m = model if g.get("checkpoint", a["checkpoint"]) == a["checkpoint"] else load(g["checkpoint"])[0]
        cfg = m.cfg
        rows = [list(g["promptIds"])] * g["B"]
        n_img = sum(1 for k in g["promptIds"] if k == IMAGE_ID) * g["B"]
        tokens, patch_src = expand_ids(rows, cfg.n_patches)
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (n_img, cfg.image_size, cfg.image_size, cfg.channels), dtype=torch.uint8, generator=gen)
        t = time_ms(lambda: m.generate(tokens, patch_src, images, g["newTokens"]), warmup=1,
                    min_runs=g.get("minRuns", 2), min_time_ms=g.get("minTimeMs", 500))
        gens.append({"B": g["B"], "promptPositions": tokens.shape[1], "newTokens": g["newTokens"], **t})
    if gens:
        out["generate"] = gens
    emit(out)


if __name__ == "__main__":
    main()
