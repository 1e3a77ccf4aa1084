"""PyTorch eager peer for bench/layers.bench.ts: causal attention fwd+bwd, LayerNorm fwd+bwd, AdamW.

torch 1.13 has no F.scaled_dot_product_attention, so attention is the explicit formula with a causal
mask (it materializes the B*H*T*T scores, as eager PyTorch does)."""
import math

import torch
import torch.nn.functional as F

from common import emit, setup, time_ms


def attention(B, T, C, H):
    hd = C // H
    qkv = torch.randn(B, T, 3 * C, requires_grad=True)
    dout = torch.randn(B, T, C)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def forward():
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1)
        return (att @ v).transpose(1, 2).contiguous().view(B, T, C)

    def fwd():
        with torch.no_grad():
            forward()

    def step():
        qkv.grad = None
        forward().backward(dout)

    return time_ms(fwd, warmup=1, min_runs=3, min_time_ms=1000), time_ms(step, warmup=1, min_runs=3, min_time_ms=1000)


def layernorm(N, C):
    x = torch.randn(N, C, requires_grad=True)
    ln = torch.nn.LayerNorm(C, eps=1e-5)
    dout = torch.randn(N, C)

    def fwd():
        with torch.no_grad():
            ln(x)

    def step():
        x.grad = None
        ln.zero_grad(set_to_none=True)
        ln(x).backward(dout)

    return time_ms(fwd), time_ms(step)


def adamw(n, foreach):
    p = torch.nn.Parameter(torch.randn(n))
    p.grad = torch.randn(n)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, foreach=foreach)
    return time_ms(opt.step)


def main():
    a = setup()
    out = {}
    if "attention" in a:
        out["attentionFwd"], out["attention"] = attention(**a["attention"])
    if "layernorm" in a:
        out["layernormFwd"], out["layernormFwdBwd"] = layernorm(**a["layernorm"])
    if "adamw" in a:
        out["adamw"] = adamw(a["adamw"]["n"], False)
        out["adamwForeach"] = adamw(a["adamw"]["n"], True)
    emit(out)


if __name__ == "__main__":
    main()
