"""Unfused PyTorch eager peer of fusedLinearLogprob: logits = h @ W.T, log_softmax(logits / tau),
gather of the targets, entropy, and autograd backward of sum(dlogp * logp) + sum(dentropy * H).

Argument: {"threads", "N", "d", "V", "tau", "reps"?}. Prints the timings (minMs/medianMs) of the
forward and of forward+backward, the bytes of the N x V tensors autograd keeps, and the measured
peak RSS increase (VmHWM after /proc/self/clear_refs) of the first forward+backward.
"""
import re

import torch

from common import emit, setup, time_ms


def status_bytes(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1)) * 1024


def peak_rss_delta(fn):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = status_bytes("VmRSS")
    fn()
    return status_bytes("VmHWM") - before


def main():
    a = setup()
    N, d, V, tau = a["N"], a["d"], a["V"], float(a.get("tau", 1.0))
    runs = dict(warmup=a.get("warmup", 1), min_runs=a.get("minRuns", 3), min_time_ms=a.get("minTimeMs", 300))
    g = torch.Generator().manual_seed(0)
    h = torch.randn(N, d, generator=g).requires_grad_()
    W = (torch.randn(V, d, generator=g) * 0.05).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g)
    dlogp = torch.randn(N, generator=g)
    dent = torch.randn(N, generator=g)

    def forward():
        logits = h @ W.t()
        logprobs = torch.log_softmax(logits / tau, dim=-1)
        logp = logprobs.gather(1, targets[:, None])[:, 0]
        entropy = -(logprobs.exp() * logprobs).sum(-1)
        return logp, entropy

    def fwd_only():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        h.grad = None
        W.grad = None
        logp, entropy = forward()
        ((dlogp * logp).sum() + (dent * entropy).sum()).backward()

    rss = peak_rss_delta(fwd_bwd)  # first call: nothing freed earlier can be reused yet
    t_fwd = time_ms(fwd_only, **runs)
    t_fb = time_ms(fwd_bwd, **runs)
    emit({
        "fwd": t_fwd,
        "fwdBwd": t_fb,
        # what an unfused backward must hold at least: the logits and the dlogits, N x V float32 each
        "unfusedBytes": 8 * N * V,
        "rssDelta": rss,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    })


if __name__ == "__main__":
    main()
