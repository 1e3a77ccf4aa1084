"""PyTorch eager peer of bench/logprob_grpo.bench.ts: logits -> logp (+ entropy) -> GRPO loss ->
backward to dlogits with autograd, the way RL trainers write it (log_softmax, gather, the SPEC §2
formula, .backward())."""
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import emit, setup, time_ms  # noqa: E402


def main():
    a = setup()
    B, T, V, G = a["B"], a["T"], a["V"], a["G"]
    tau, beta, eps_lo, eps_hi, c = a["tau"], a["beta"], a["epsLow"], a["epsHigh"], a["dualClip"]
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(B * T, V, generator=g) * 2).requires_grad_(True)
    targets = torch.randint(0, V, (B * T,), generator=g)
    with torch.no_grad():
        lp0 = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).view(B, T)
    old_logp = lp0 + 0.1 * torch.randn(B, T, generator=g)
    ref_logp = lp0 + 0.1 * torch.randn(B, T, generator=g)
    mask = torch.ones(B, T)
    rewards = torch.randint(0, 2, (B,), generator=g).float()
    groups = torch.arange(B) // (B // G)

    def logp_entropy(lg):
        z = lg if tau == 1.0 else lg / tau
        lsm = torch.log_softmax(z, -1)
        logp = lsm.gather(-1, targets[:, None]).squeeze(-1).view(B, T)
        with torch.no_grad():  # entropy is a metric here: no gradient
            ent = -(lsm.exp() * lsm).sum(-1).view(B, T)
        return logp, ent

    def advantages():
        r = rewards.view(G, B // G)
        return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(B)

    def forward():
        with torch.no_grad():
            logp_entropy(logits)

    def step():
        logits.grad = None
        logp, ent = logp_entropy(logits)
        A = advantages()[:, None]
        ratio = torch.exp(logp - old_logp)
        l1 = -A * ratio
        l2 = -A * torch.clamp(ratio, 1 - eps_lo, 1 + eps_hi)
        L = torch.maximum(l1, l2)
        L = torch.where(A < 0, torch.minimum(L, -c * A), L)
        delta = ref_logp - logp
        k3 = torch.exp(delta) - delta - 1
        loss = ((L + beta * k3) * mask).sum() / mask.sum()
        loss.backward()
        (ent * mask).sum() / mask.sum()  # the entropy metric
        return loss

    emit({"forward": time_ms(forward), "step": time_ms(step), "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
