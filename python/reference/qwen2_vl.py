"""Plain-PyTorch reference of Qwen2-VL and Qwen2.5-VL (images only), written for medgym's tests.

Follows, top to bottom, Hugging Face transformers'
  src/transformers/models/qwen2_vl/configuration_qwen2_vl.py
  src/transformers/models/qwen2_vl/image_processing_qwen2_vl.py   (the slow, PIL-based processor)
  src/transformers/models/qwen2_vl/modeling_qwen2_vl.py
  src/transformers/models/qwen2_5_vl/configuration_qwen2_5_vl.py
  src/transformers/models/qwen2_5_vl/modeling_qwen2_5_vl.py
It is an independent re-implementation (torch 1.13 APIs only, no transformers import), eager attention in
float32, with the module tree spelled so that `state_dict()` gives the names of the checkpoints on the Hub
(`model.*` for the language model, `visual.*` for the vision tower, `lm_head.weight` when untied).
Videos are not covered (get_rope_index raises on video tokens).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The reference is split by concern; this module is the whole of it (make_fixtures imports from here).
from qwen2_vl_config import *  # noqa: F401,F403
from qwen2_vl_processing import *  # noqa: F401,F403
from qwen2_vl_processing import _resample_axis, _precompute_coeffs  # noqa: F401
from qwen2_vl_layers import *  # noqa: F401,F403
from qwen2_vl_vision import *  # noqa: F401,F403
from qwen2_vl_text import *  # noqa: F401,F403

# ----------------------------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------------------------


class Qwen2VLForConditionalGeneration(nn.Module):
    """state_dict names = the Hub checkpoints': model.* (language model), visual.*, lm_head.weight."""

    def __init__(self, config: Qwen2VLConfig):
        super().__init__()
        self.config = config
        self.model = Qwen2VLTextModel(config.text_config)
        self.visual = Qwen2VisionTransformer(config.vision_config, config.is_2_5)
        if not config.text_config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)

    def lm_head_weight(self):
        return self.model.embed_tokens.weight if self.config.text_config.tie_word_embeddings else self.lm_head.weight

    def embed(self, input_ids, pixel_values=None, image_grid_thw=None):
        x = self.model.embed_tokens(input_ids)
        if pixel_values is not None:
            img = self.visual(pixel_values, image_grid_thw)
            mask = input_ids == self.config.image_token_id
            if int(mask.sum()) != img.shape[0]:
                raise ValueError(f"Image features and image tokens do not match: tokens: {int(mask.sum())}, features {img.shape[0]}")
            x = x.masked_scatter(mask.unsqueeze(-1).expand_as(x), img.to(x.dtype))
        return x

    def forward(self, input_ids, attention_mask=None, pixel_values=None, image_grid_thw=None, position_ids=None, caches=None, past_mask=None):
        """Full (prefill) forward → logits (B, T, V), position ids, rope deltas. With `caches`
        (a list of [None, None] per layer), the keys/values are kept for decode_step."""
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids, deltas = get_rope_index(self.config, input_ids, image_grid_thw, attention_mask)
        else:
            deltas = None
        x = self.embed(input_ids, pixel_values, image_grid_thw)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
        mask = causal[None, None] & attention_mask.bool()[:, None, None, :]
        h = self.model(x, position_ids, mask, caches)
        return h @ self.lm_head_weight().t(), position_ids, deltas

    def decode_step(self, tokens, key_mask, position_ids, caches):
        """One new token per sequence: tokens (B, 1), key_mask (B, S) over cache + new, position_ids (3, B, 1)."""
        x = self.model.embed_tokens(tokens)
        h = self.model(x, position_ids, key_mask.bool()[:, None, None, :], caches)
        return h @ self.lm_head_weight().t()


@torch.no_grad()
def greedy_generate(model, input_ids, attention_mask, pixel_values, image_grid_thw, max_new_tokens: int):
    """Greedy decoding with a KV cache (prefill once, then one token per step, positions = cache length +
    rope delta, as HF's generate). Runs exactly max_new_tokens steps (no EOS stop). Returns (new ids (B, N),
    the logits of each step (N, B, V))."""
    caches = [[None, None] for _ in model.model.layers]
    logits, _, deltas = model(input_ids, attention_mask, pixel_values, image_grid_thw, caches=caches)
    step_logits = [logits[:, -1]]
    out = [logits[:, -1].argmax(-1)]
    mask = attention_mask.clone()
    for _ in range(max_new_tokens - 1):
        cache_position = mask.shape[1]
        mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], dim=1)
        pos = (cache_position + deltas).view(1, -1, 1).expand(3, -1, 1)
        lg = model.decode_step(out[-1].unsqueeze(1), mask, pos, caches)[:, -1]
        step_logits.append(lg)
        out.append(lg.argmax(-1))
    return torch.stack(out, dim=1), torch.stack(step_logits, dim=0)


@torch.no_grad()
def greedy_generate_nocache(model, input_ids, attention_mask, pixel_values, image_grid_thw, max_new_tokens: int):
    """The same by recomputing the whole sequence (images included) at every step."""
    ids, mask = input_ids, attention_mask
    out, step_logits = [], []
    for _ in range(max_new_tokens):
        logits, _, _ = model(ids, mask, pixel_values, image_grid_thw)
        step_logits.append(logits[:, -1])
        nxt = logits[:, -1].argmax(-1)
        out.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype=mask.dtype)], dim=1)
    return torch.stack(out, dim=1), torch.stack(step_logits, dim=0)


def token_logprobs(logits, input_ids, attention_mask):
    """log p(token t | tokens < t) for t ≥ 1 (float32, (B, T)); NaN where t = 0, the token is padding, or the
    previous position is padding (the first real token of a left-padded row)."""
    lp = F.log_softmax(logits.float(), dim=-1)
    out = torch.full(input_ids.shape, float("nan"))
    g = lp[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    ok = (attention_mask[:, 1:] == 1) & (attention_mask[:, :-1] == 1)
    out[:, 1:] = torch.where(ok, g, torch.tensor(float("nan")))
    return out
