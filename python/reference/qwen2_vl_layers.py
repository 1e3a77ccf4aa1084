"""Pieces the vision tower and the language model share: RMSNorm, rotary helpers, QuickGELU."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from qwen2_vl_config import *  # noqa: F401,F403


# ----------------------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------------------


class Qwen2RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dt)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


ACT = {"quick_gelu": quick_gelu, "silu": F.silu, "gelu": F.gelu}


def apply_rotary_pos_emb_vision(q, k, cos, sin):
    """q, k: (seq, heads, head_dim); cos, sin: (seq, head_dim)."""
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
    return (q.float() * cos) + (rotate_half(q.float()) * sin), (k.float() * cos) + (rotate_half(k.float()) * sin)
