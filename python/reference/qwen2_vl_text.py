"""The language model (Qwen2 with M-RoPE) and get_rope_index."""
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
# Language model (Qwen2 decoder with multimodal RoPE)
# ----------------------------------------------------------------------------------------------------------


def mrope_cos_sin(position_ids, head_dim: int, theta: float, mrope_section: Sequence[int]):
    """position_ids (3, B, T) → cos, sin (B, T, head_dim): the first mrope_section[0] frequencies (and their
    copies in the second half) from the temporal ids, the next mrope_section[1] from the height ids, the rest
    from the width ids."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = position_ids[..., None].float() * inv_freq  # (3, B, T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    sec = list(mrope_section) * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1)
    sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1)
    return cos, sin


class Qwen2VLAttention(nn.Module):
    def __init__(self, c: Qwen2VLTextConfig):
        super().__init__()
        self.num_heads, self.num_kv = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.q_proj = nn.Linear(c.hidden_size, self.num_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.num_kv * self.head_dim, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.num_kv * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        """x (B, T, D); cos/sin (B, T, hd); mask (B, 1, T, S) boolean "may attend"; cache: [k, v] or None
        (appended in place)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        c, s = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
        if cache is not None:
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        rep = self.num_heads // self.num_kv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # GQA: head i uses kv head i // rep
        w = torch.matmul(q, k.transpose(2, 3)) * self.head_dim ** -0.5
        w = w.masked_fill(~mask, torch.finfo(w.dtype).min)
        out = torch.matmul(F.softmax(w, dim=-1, dtype=torch.float32), v)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Qwen2MLP(nn.Module):
    def __init__(self, c: Qwen2VLTextConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        self.act = ACT[c.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Qwen2VLDecoderLayer(nn.Module):
    def __init__(self, c: Qwen2VLTextConfig):
        super().__init__()
        self.self_attn = Qwen2VLAttention(c)
        self.mlp = Qwen2MLP(c)
        self.input_layernorm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2VLTextModel(nn.Module):
    def __init__(self, c: Qwen2VLTextConfig):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Qwen2VLDecoderLayer(c) for _ in range(c.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def forward(self, inputs_embeds, position_ids, mask, caches=None):
        c = self.c
        cos, sin = mrope_cos_sin(position_ids, c.hidden_size // c.num_attention_heads, c.rope_theta, c.rope_scaling["mrope_section"])
        x = inputs_embeds
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, None if caches is None else caches[i])
        return self.norm(x)


# ----------------------------------------------------------------------------------------------------------
# get_rope_index (text + images)
# ----------------------------------------------------------------------------------------------------------


def get_rope_index(config: Qwen2VLConfig, input_ids, image_grid_thw=None, attention_mask=None):
    """3-D positions (3, B, T) and rope deltas (B, 1). Text: t = h = w = running index. An image of merged grid
    (gt, gh, gw) placed after text ending at index s-1: t = s + temporal index (Qwen2.5-VL: index ×
    second_per_grid_t × tokens_per_second with second_per_grid_t = 0 for images → 0), h = s + row,
    w = s + column; the text after it resumes at max + 1. Padding (attention_mask 0) gets position 1.
    delta = max position + 1 − (padded) length, so decode step positions are cache_position + delta."""
    merge = config.vision_config.spatial_merge_size
    if image_grid_thw is None:
        if attention_mask is not None:
            pos = attention_mask.long().cumsum(-1) - 1
            pos.masked_fill_(attention_mask == 0, 1)
            pos = pos.unsqueeze(0).expand(3, -1, -1)
            deltas = pos.max(0)[0].max(-1, keepdim=True)[0] + 1 - attention_mask.shape[-1]
        else:
            pos = torch.arange(input_ids.shape[1]).view(1, 1, -1).expand(3, input_ids.shape[0], -1)
            deltas = torch.zeros([input_ids.shape[0], 1], dtype=input_ids.dtype)
        return pos, deltas
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    position_ids = torch.ones(3, input_ids.shape[0], input_ids.shape[1], dtype=input_ids.dtype)
    deltas, image_index = [], 0
    for i in range(input_ids.shape[0]):
        ids = input_ids[i][attention_mask[i] == 1]
        starts = torch.argwhere(ids == config.vision_start_token_id).squeeze(1)
        following = ids[starts + 1]
        if (following == config.video_token_id).any():
            raise NotImplementedError("videos are not covered by this reference")
        image_nums = int((following == config.image_token_id).sum())
        tokens = ids.tolist()
        parts, st = [], 0
        for _ in range(image_nums):
            ed = tokens.index(config.image_token_id, st)
            t, h, w = image_grid_thw[image_index].tolist()
            image_index += 1
            gt, gh, gw = t, h // merge, w // merge
            text_len = ed - st
            st_idx = int(parts[-1].max()) + 1 if parts else 0
            parts.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
            if config.is_2_5:  # images: second_per_grid_t = 0
                t_index = (torch.arange(gt).view(-1, 1).expand(-1, gh * gw) * 0 * config.vision_config.tokens_per_second).long().flatten()
            else:
                t_index = torch.arange(gt).view(-1, 1).expand(-1, gh * gw).flatten()
            h_index = torch.arange(gh).view(1, -1, 1).expand(gt, -1, gw).flatten()
            w_index = torch.arange(gw).view(1, 1, -1).expand(gt, gh, -1).flatten()
            parts.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
            st = ed + gt * gh * gw
        if st < len(tokens):
            st_idx = int(parts[-1].max()) + 1 if parts else 0
            parts.append(torch.arange(len(tokens) - st).view(1, -1).expand(3, -1) + st_idx)
        llm = torch.cat(parts, dim=1).reshape(3, -1)
        position_ids[:, i, attention_mask[i] == 1] = llm
        deltas.append(int(llm.max()) + 1 - input_ids.shape[1])
    return position_ids, torch.tensor(deltas).unsqueeze(1)
