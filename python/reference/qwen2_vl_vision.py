"""The vision towers: Qwen2-VL (LayerNorm, QuickGELU) and Qwen2.5-VL (RMSNorm, SwiGLU, window attention), the patch merger."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from qwen2_vl_config import *  # noqa: F401,F403
from qwen2_vl_layers import *  # noqa: F401,F403


# ----------------------------------------------------------------------------------------------------------
# Vision tower
# ----------------------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Conv3d with kernel = stride = (T, P, P) on a (C, T, P, P) patch = a Linear on the flattened patch."""

    def __init__(self, patch_size: int, temporal_patch_size: int, in_channels: int, embed_dim: int):
        super().__init__()
        self.patch_size, self.temporal_patch_size, self.in_channels, self.embed_dim = patch_size, temporal_patch_size, in_channels, embed_dim
        k = [temporal_patch_size, patch_size, patch_size]
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=k, stride=k, bias=False)

    def forward(self, x):
        x = x.view(-1, self.in_channels, self.temporal_patch_size, self.patch_size, self.patch_size)
        return self.proj(x.to(self.proj.weight.dtype)).view(-1, self.embed_dim)

    def forward_as_linear(self, x):
        return x.reshape(x.shape[0], -1) @ self.proj.weight.reshape(self.embed_dim, -1).t()


class VisionRotaryEmbedding(nn.Module):
    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), persistent=False)

    def forward(self, seqlen: int):
        return torch.outer(torch.arange(seqlen, dtype=self.inv_freq.dtype), self.inv_freq)


class VisionAttention(nn.Module):
    """Bidirectional attention within each [cu_seqlens[i], cu_seqlens[i+1]) span."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cu_seqlens, cos, sin, mask=None):
        n = x.shape[0]
        q, k, v = self.qkv(x).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # (heads, n, hd)
        scale = self.head_dim ** -0.5
        if mask is not None:  # an explicit (n, n) boolean "may attend" mask (used by the self-checks)
            w = torch.matmul(q, k.transpose(1, 2)) * scale
            w = w.masked_fill(~mask, torch.finfo(w.dtype).min)
            out = torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32), v)
        else:
            outs = []
            bounds = [int(b) for b in cu_seqlens]
            for s, e in zip(bounds[:-1], bounds[1:]):
                if e == s:
                    continue
                w = torch.matmul(q[:, s:e], k[:, s:e].transpose(1, 2)) * scale
                outs.append(torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32), v[:, s:e]))
            out = torch.cat(outs, dim=1)
        return self.proj(out.transpose(0, 1).reshape(n, -1))


class VisionMlp(nn.Module):  # Qwen2-VL: fc1 → quick_gelu → fc2
    def __init__(self, dim: int, hidden_dim: int, hidden_act: str):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim), ACT[hidden_act]

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Qwen2_5_VLMLP(nn.Module):  # Qwen2.5-VL vision: SwiGLU with biases
    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str, bias: bool):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.act = ACT[hidden_act]

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Qwen2VLVisionBlock(nn.Module):
    def __init__(self, c: Qwen2VLVisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.attn = VisionAttention(c.embed_dim, c.num_heads)
        self.mlp = VisionMlp(c.embed_dim, int(c.embed_dim * c.mlp_ratio), c.hidden_act)

    def forward(self, x, cu_seqlens, cos, sin, mask=None):
        x = x + self.attn(self.norm1(x), cu_seqlens, cos, sin, mask)
        return x + self.mlp(self.norm2(x))


class Qwen2_5_VLVisionBlock(nn.Module):
    def __init__(self, c: Qwen2_5_VLVisionConfig):
        super().__init__()
        self.norm1 = Qwen2RMSNorm(c.hidden_size, eps=1e-6)
        self.norm2 = Qwen2RMSNorm(c.hidden_size, eps=1e-6)
        self.attn = VisionAttention(c.hidden_size, c.num_heads)
        self.mlp = Qwen2_5_VLMLP(c.hidden_size, c.intermediate_size, c.hidden_act, bias=True)

    def forward(self, x, cu_seqlens, cos, sin, mask=None):
        x = x + self.attn(self.norm1(x), cu_seqlens, cos, sin, mask)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    """Norm each patch, concatenate the 2×2 (merge²) consecutive patches, MLP (Linear, exact GELU, Linear).
    Qwen2-VL: ln_q is a LayerNorm; Qwen2.5-VL: an RMSNorm (no bias)."""

    def __init__(self, dim: int, context_dim: int, spatial_merge_size: int, rms: bool):
        super().__init__()
        self.hidden_size = context_dim * spatial_merge_size ** 2
        self.ln_q = Qwen2RMSNorm(context_dim, eps=1e-6) if rms else nn.LayerNorm(context_dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(self.hidden_size, self.hidden_size), nn.GELU(), nn.Linear(self.hidden_size, dim))

    def forward(self, x):
        return self.mlp(self.ln_q(x).view(-1, self.hidden_size))


def cu_seqlens_of(grid_thw) -> torch.Tensor:
    """[0, t*h*w of image 0 (one span per temporal slice), ...] — full attention within each image."""
    c = torch.repeat_interleave(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0]).cumsum(0, dtype=torch.int32)
    return F.pad(c, (1, 0), value=0)


class Qwen2VisionTransformer(nn.Module):
    """Shared by both families; Qwen2.5-VL adds window attention (get_window_index)."""

    def __init__(self, c, is_2_5: bool):
        super().__init__()
        self.c, self.is_2_5 = c, is_2_5
        width = c.hidden_size if is_2_5 else c.embed_dim
        out = c.out_hidden_size if is_2_5 else c.hidden_size
        self.spatial_merge_size = c.spatial_merge_size
        self.spatial_merge_unit = c.spatial_merge_size ** 2
        self.patch_embed = PatchEmbed(c.patch_size, c.temporal_patch_size, c.in_channels, width)
        self.rotary_pos_emb = VisionRotaryEmbedding((width // c.num_heads) // 2)
        blk = Qwen2_5_VLVisionBlock if is_2_5 else Qwen2VLVisionBlock
        self.blocks = nn.ModuleList([blk(c) for _ in range(c.depth)])
        self.merger = PatchMerger(out, width, c.spatial_merge_size, rms=is_2_5)

    def rot_pos_emb(self, grid_thw):
        """(h, w) of every patch, in the processor's order (merge blocks of 2×2 consecutive) → rotary angles."""
        m = self.spatial_merge_size
        pos_ids = []
        for t, h, w in grid_thw.tolist():
            hpos = torch.arange(h).unsqueeze(1).expand(-1, w).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wpos = torch.arange(w).unsqueeze(0).expand(h, -1).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            pos_ids.append(torch.stack([hpos, wpos], dim=-1).repeat(t, 1))
        pos_ids = torch.cat(pos_ids, dim=0)
        full = self.rotary_pos_emb(int(grid_thw[:, 1:].max()))
        return full[pos_ids].flatten(1)  # (n, head_dim/2): [h angles | w angles]

    def get_window_index(self, grid_thw, window_size: Optional[int] = None):
        """Qwen2.5-VL: the order of merged patches that groups them window by window (windows of
        window_size/merge/patch merged units per side, row-major over windows, row-major inside), and the
        cumulative patch counts of the windows (empty windows from HF's padding included, as in HF)."""
        ws = self.c.window_size if window_size is None else window_size
        vit_merger_window_size = ws // self.spatial_merge_size // self.c.patch_size
        window_index, cu_window_seqlens, base = [], [0], 0
        for t, h, w in grid_thw.tolist():
            lh, lw = h // self.spatial_merge_size, w // self.spatial_merge_size
            index = torch.arange(t * lh * lw).reshape(t, lh, lw)
            pad_h = vit_merger_window_size - lh % vit_merger_window_size  # a full extra (empty) window when divisible, as HF
            pad_w = vit_merger_window_size - lw % vit_merger_window_size
            nwh, nww = (lh + pad_h) // vit_merger_window_size, (lw + pad_w) // vit_merger_window_size
            p = F.pad(index, (0, pad_w, 0, pad_h), "constant", -100)
            p = p.reshape(t, nwh, vit_merger_window_size, nww, vit_merger_window_size).permute(0, 1, 3, 2, 4)
            p = p.reshape(t, nwh * nww, vit_merger_window_size, vit_merger_window_size)
            seqlens = (p != -100).sum([2, 3]).reshape(-1)
            p = p.reshape(-1)
            window_index.append(p[p != -100] + base)
            cu_window_seqlens.extend((seqlens.cumsum(0) * self.spatial_merge_unit + cu_window_seqlens[-1]).tolist())
            base += t * lh * lw
        return torch.cat(window_index, dim=0), cu_window_seqlens

    def forward(self, pixel_values, grid_thw, window_size: Optional[int] = None, fullatt_block_indexes=None, return_debug=False):
        x = self.patch_embed(pixel_values)
        rot = self.rot_pos_emb(grid_thw)
        n = x.shape[0]
        cu_seqlens = cu_seqlens_of(grid_thw)
        debug = {"cu_seqlens": cu_seqlens.tolist()}
        if self.is_2_5:
            window_index, cu_window = self.get_window_index(grid_thw, window_size)
            cu_window = torch.unique_consecutive(torch.tensor(cu_window, dtype=torch.int32))
            debug.update(window_index=window_index.tolist(), cu_window_seqlens=cu_window.tolist())
            u = self.spatial_merge_unit
            x = x.reshape(n // u, u, -1)[window_index].reshape(n, -1)
            rot = rot.reshape(n // u, u, -1)[window_index].reshape(n, -1)
            full = self.c.fullatt_block_indexes if fullatt_block_indexes is None else fullatt_block_indexes
        emb = torch.cat((rot, rot), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        for i, blk in enumerate(self.blocks):
            cu = cu_seqlens if (not self.is_2_5 or i in full) else cu_window
            x = blk(x, cu, cos, sin)
        x = self.merger(x)
        if self.is_2_5:
            x = x[torch.argsort(window_index)]  # back to the processor's (raster of merged units) order
        return (x, debug) if return_debug else x

    def forward_masked(self, pixel_values, grid_thw):
        """Self-check path without the window permutation: the original patch order, each block attending
        through an explicit mask (same image and, for window blocks, same window)."""
        x = self.patch_embed(pixel_values)
        rot = self.rot_pos_emb(grid_thw)
        emb = torch.cat((rot, rot), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        m = self.spatial_merge_size
        img_id, win_id = [], []
        for k, (t, h, w) in enumerate(grid_thw.tolist()):
            hp = torch.arange(h).unsqueeze(1).expand(-1, w).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wp = torch.arange(w).unsqueeze(0).expand(h, -1).reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            if self.is_2_5:
                vws = self.c.window_size // m // self.c.patch_size  # window side in merged units
                wid = (hp // m // vws) * 10000 + (wp // m // vws)
            else:
                wid = torch.zeros_like(hp)
            tt = torch.arange(t).repeat_interleave(h * w)
            img_id.append(torch.full((t * h * w,), k) * 1000 + tt)
            win_id.append(wid.repeat(t))
        img_id, win_id = torch.cat(img_id), torch.cat(win_id)
        same_img = img_id[:, None] == img_id[None, :]
        same_win = same_img & (win_id[:, None] == win_id[None, :])
        for i, blk in enumerate(self.blocks):
            full = (not self.is_2_5) or i in self.c.fullatt_block_indexes
            x = blk(x, None, cos, sin, mask=same_img if full else same_win)
        return self.merger(x)
