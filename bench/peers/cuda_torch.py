"""PyTorch eager CUDA peer of medgym_cuda_check --bench (scripts/gpu-check.sh runs both): the same
work under the same names and shapes, timed the same way (CUDA events, mean of 10 calls after 2
warm-up calls), written as JSON for the ratio table.

  python3 bench/peers/cuda_torch.py OUT.json

- gemm_bf16: torch.matmul on bf16 (cuBLAS; its output is bf16, medgym's fp32).
- fused_linear_logprob*: the unfused eager path (h @ W.T, float, log_softmax, gather, entropy under
  no_grad, autograd backward of sum(dlogp * logp)); TF32 off for the fp32 row.
- logprob_grpo_fwd_bwd: log_softmax + gather + entropy metric, the SPEC §2 GRPO loss (token-mean,
  dual clip 3, k3 KL with beta 0.04), autograd backward to dlogits, as RL trainers write it.
- attention_*: scaled_dot_product_attention (causal, fp32) forward and backward.
- the memory-bound rows: F.gelu(tanh), F.layer_norm, softmax, log_softmax+gather, fused AdamW.
- policy_train_step / policy_forward: the `base` policy shape as a plain PyTorch GPT-2 (see policy()).
"""
import json
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, warmup=2, iters=10):
    for _ in range(warmup):
        fn()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters


results = []


def bench(name, shape, fn, iters=10):
    ms = time_ms(fn, iters=iters)
    results.append({"name": name, "shape": shape, "ms": ms})
    print(f"{name:40s} {shape:26s} {ms:9.3f} ms", flush=True)


def gemm():
    for n, layouts in ((4096, ("NN", "NT", "TN", "TT")), (8192, ("NT",))):
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        for lay in layouts:
            A = a.t() if lay[0] == "T" else a
            B = b.t() if lay[1] == "T" else b
            bench("gemm_bf16", f"{n}x{n}x{n} {lay}", lambda: torch.matmul(A, B))
    x = torch.randn(16384, 768, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(3072, 768, device="cuda", dtype=torch.bfloat16)
    bench("gemm_bf16", "16384x3072x768 NT", lambda: torch.matmul(x, w.t()))


def fused():
    for N, d, V, dtype, name in ((8192, 1024, 32768, torch.bfloat16, "fused_linear_logprob_bf16"),
                                 (16384, 256, 268, torch.bfloat16, "fused_linear_logprob_bf16"),
                                 (8192, 1024, 32768, torch.float32, "fused_linear_logprob")):
        shape = f"N={N} d={d} V={V}"
        h = torch.randn(N, d, device="cuda", dtype=dtype, requires_grad=True)
        W = (torch.randn(V, d, device="cuda") / d ** 0.5).to(dtype).requires_grad_(True)
        t = torch.randint(0, V, (N,), device="cuda")
        dlogp = torch.randn(N, device="cuda")

        def logp_entropy():
            lsm = torch.log_softmax((h @ W.t()).float(), -1)
            logp = lsm.gather(-1, t[:, None]).squeeze(-1)
            with torch.no_grad():
                ent = -(lsm.exp() * lsm).sum(-1)
            return logp, ent

        def fwd():
            with torch.no_grad():
                logp_entropy()

        def fwd_bwd():
            h.grad = W.grad = None
            logp, _ = logp_entropy()
            (logp * dlogp).sum().backward()

        if dtype == torch.bfloat16:
            bench(name + "_fwd", shape, fwd)
        bench(name + "_fwd_bwd", shape, fwd_bwd, iters=10 if dtype == torch.bfloat16 else 2)


def logprob_grpo():
    for B, T, V in ((64, 1024, 268), (16, 1024, 32768)):
        N = B * T
        logits = torch.randn(N, V, device="cuda", requires_grad=True)
        t = torch.randint(0, V, (N,), device="cuda")
        with torch.no_grad():
            lp0 = torch.log_softmax(logits, -1).gather(-1, t[:, None]).view(B, T)
        old, ref = lp0.clone(), lp0.clone()
        mask = (torch.arange(T, device="cuda") >= T // 4).float().expand(B, T)
        A = torch.randn(B, 1, device="cuda")
        beta, lo, hi, c = 0.04, 0.2, 0.2, 3.0

        def step():
            logits.grad = None
            lsm = torch.log_softmax(logits, -1)
            logp = lsm.gather(-1, t[:, None]).squeeze(-1).view(B, T)
            with torch.no_grad():
                ent = -(lsm.exp() * lsm).sum(-1).view(B, T)
            ratio = torch.exp(logp - old)
            L = torch.maximum(-A * ratio, -A * torch.clamp(ratio, 1 - lo, 1 + hi))
            L = torch.where(A < 0, torch.minimum(L, -c * A), L)
            delta = ref - logp
            loss = ((L + beta * (torch.exp(delta) - delta - 1)) * mask).sum() / mask.sum()
            loss.backward()
            return (ent * mask).sum() / mask.sum()

        bench("logprob_grpo_fwd_bwd", f"B={B} T={T} V={V}", step)


def attention():
    B, T, C, H = 8, 1024, 768, 12
    q, k, v = (torch.randn(B, H, T, C // H, device="cuda", requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, C // H, device="cuda")
    shape = f"B={B} T={T} C={C} H={H}"
    with torch.no_grad():
        bench("attention_forward", shape, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    bench("attention_backward", shape, lambda: torch.autograd.grad(out, (q, k, v), g, retain_graph=True))


def memory():
    n = 64 << 20
    x = torch.randn(n, device="cuda")
    bench("gelu_forward", "n=64M fp32", lambda: F.gelu(x, approximate="tanh"))
    xb = x.bfloat16()
    bench("gelu_forward_bf16", "n=64M bf16", lambda: F.gelu(xb, approximate="tanh"))
    N, C = 32768, 1024
    a = torch.randn(N, C, device="cuda")
    w, b = torch.ones(C, device="cuda"), torch.zeros(C, device="cuda")
    bench("layernorm_forward", "N=32768 C=1024 fp32", lambda: F.layer_norm(a, (C,), w, b, 1e-5))
    bench("softmax_forward", "N=32768 C=1024", lambda: torch.softmax(a, -1))
    N, V = 16384, 32768
    logits = torch.randn(N, V, device="cuda")
    t = torch.randint(0, V, (N,), device="cuda")
    bench("logprob_forward", "N=16384 V=32768", lambda: torch.log_softmax(logits, -1).gather(-1, t[:, None]))
    p = torch.nn.Parameter(torch.randn(n, device="cuda"))
    p.grad = torch.randn(n, device="cuda")
    opt = torch.optim.AdamW([p], lr=1e-3, fused=True)
    bench("adamw_step", "n=64M", opt.step)


def policy():
    """The `base` policy shape (d768 L12 H12, V268) as a plain PyTorch GPT-2 (eager, SDPA attention,
    tied head): the peer of medgym's policy_train_step / policy_forward rows, B=16 x T=1024 tokens,
    loss = -mean logp (the work of medgym's backward from dlogp), fused AdamW; bf16 = autocast over
    fp32 weights (medgym: fp32 master weights, bf16 GEMMs)."""
    import torch.nn as nn

    V, d, L, H, T, B = 268, 768, 12, 12, 1024, 16

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.fc_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            q, k, v = self.attn(self.ln1(x)).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d)
            x = x + self.proj(y)
            return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.lnf = nn.LayerNorm(d)

        def forward(self, ids):
            x = self.wte(ids) + self.wpe.weight[:T]
            for b in self.blocks:
                x = b(x)
            return torch.log_softmax((self.lnf(x) @ self.wte.weight.t()).float(), -1)

    model = GPT().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids = torch.randint(0, 256, (B, T), device="cuda")
    tgt = ids[:, 1:, None]
    for dtype, tag in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        shape = f"base B=16 T=1024 {tag}"
        bf16 = dtype == torch.bfloat16

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                logp = model(ids)[:, :-1].gather(-1, tgt)
            (-logp.mean()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def forward():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                model(ids)[:, :-1].gather(-1, tgt)

        bench("policy_train_step", shape, step, iters=3)
        bench("policy_forward", shape, forward, iters=5)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "torch-bench.json"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}", flush=True)
    for section in (gemm, memory, attention, fused, logprob_grpo, policy):
        try:
            section()
        except Exception as e:  # one failing peer row must not hide the others
            print(f"{section.__name__}: {type(e).__name__}: {e}", flush=True)
        torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump({"tool": "torch", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
                   "bench": results}, f, indent=1)


if __name__ == "__main__":
    main()
