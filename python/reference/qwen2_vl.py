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

# ----------------------------------------------------------------------------------------------------------
# Configuration (HF's names and defaults; the Hub's config.json is "flat": text fields at the top level)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Qwen2VLVisionConfig:
    depth: int = 32
    embed_dim: int = 1280
    hidden_size: int = 3584  # the merger's output width = the language model's hidden size
    hidden_act: str = "quick_gelu"
    mlp_ratio: float = 4
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    initializer_range: float = 0.02


@dataclass
class Qwen2_5_VLVisionConfig:
    depth: int = 32
    hidden_size: int = 3584  # the ViT width (Qwen2-VL calls it embed_dim)
    hidden_act: str = "silu"
    intermediate_size: int = 3420
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    tokens_per_second: int = 4
    window_size: int = 112  # in pixels of the resized image
    out_hidden_size: int = 3584
    fullatt_block_indexes: List[int] = field(default_factory=lambda: [7, 15, 23, 31])
    initializer_range: float = 0.02


@dataclass
class Qwen2VLTextConfig:
    vocab_size: int = 152064
    hidden_size: int = 8192
    intermediate_size: int = 29568
    num_hidden_layers: int = 80
    num_attention_heads: int = 64
    num_key_value_heads: int = 8
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-05
    use_cache: bool = True
    tie_word_embeddings: bool = False
    rope_theta: float = 1000000.0
    use_sliding_window: bool = False
    sliding_window: int = 4096
    max_window_layers: int = 80
    attention_dropout: float = 0.0
    # HF's default is None, but every released checkpoint ships {"type": "mrope", "mrope_section": [16, 24, 24]}
    # and the model cannot run without mrope_section.
    rope_scaling: dict = field(default_factory=lambda: {"type": "mrope", "mrope_section": [16, 24, 24]})


Qwen2_5_VLTextConfig = Qwen2VLTextConfig  # same fields and defaults in HF


@dataclass
class Qwen2VLConfig:
    model_type: str = "qwen2_vl"
    text_config: Qwen2VLTextConfig = field(default_factory=Qwen2VLTextConfig)
    vision_config: object = field(default_factory=Qwen2VLVisionConfig)
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    vision_token_id: int = 151654  # <|vision_pad|>, written by the Hub configs, unused by the model
    bos_token_id: int = 151643
    eos_token_id: int = 151645

    @property
    def is_2_5(self) -> bool:
        return self.model_type == "qwen2_5_vl"

    def to_hub_dict(self, torch_dtype: str = "float32") -> dict:
        """config.json in the Hub's flat layout (as Qwen/Qwen2-VL-2B-Instruct and Qwen/Qwen2.5-VL-3B-Instruct)."""
        t = asdict(self.text_config)
        v = asdict(self.vision_config)
        v["in_chans"] = v["in_channels"]  # the Hub configs spell it in_chans; HF reads in_channels
        if self.is_2_5:
            v["spatial_patch_size"] = v["patch_size"]  # also written by the Hub's Qwen2.5-VL configs
        v.pop("initializer_range")
        arch = "Qwen2_5_VLForConditionalGeneration" if self.is_2_5 else "Qwen2VLForConditionalGeneration"
        d = {
            "architectures": [arch],
            "model_type": self.model_type,
            "attention_dropout": t["attention_dropout"],
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "vision_token_id": self.vision_token_id,
            "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id,
            "hidden_act": t["hidden_act"],
            "hidden_size": t["hidden_size"],
            "initializer_range": t["initializer_range"],
            "intermediate_size": t["intermediate_size"],
            "max_position_embeddings": t["max_position_embeddings"],
            "max_window_layers": t["max_window_layers"],
            "num_attention_heads": t["num_attention_heads"],
            "num_hidden_layers": t["num_hidden_layers"],
            "num_key_value_heads": t["num_key_value_heads"],
            "rms_norm_eps": t["rms_norm_eps"],
            "rope_theta": t["rope_theta"],
            "sliding_window": t["sliding_window"],
            "tie_word_embeddings": t["tie_word_embeddings"],
            "torch_dtype": torch_dtype,
            "transformers_version": "4.49.0",
            "use_cache": t["use_cache"],
            "use_sliding_window": t["use_sliding_window"],
            "vision_config": v,
            "rope_scaling": t["rope_scaling"],
            "vocab_size": t["vocab_size"],
        }
        return d


# ----------------------------------------------------------------------------------------------------------
# Image processor (Qwen2VLImageProcessor, also used by Qwen2.5-VL)
# ----------------------------------------------------------------------------------------------------------

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor  # Python's round: half to even, as HF


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 1280):
    """Both sides divisible by `factor`, the area within [min_pixels, max_pixels], the aspect ratio kept."""
    if height < 10 or width < 10:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {height} / {width}")
    h_bar = round_by_factor(height, factor)
    w_bar = round_by_factor(width, factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = floor_by_factor(height / beta, factor)
        w_bar = floor_by_factor(width / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


# --- Pillow's BICUBIC resize of 8-bit images (Pillow's libImaging/Resample.c), re-implemented exactly -----
_PRECISION_BITS = 32 - 8 - 2


def _bicubic_filter(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _precompute_coeffs(in_size: int, out_size: int):
    """Per output pixel: first input index, count, and the fixed-point weights (Pillow's precompute_coeffs +
    normalize_coeffs_8bpc; double precision as in C, C's (int) truncation toward zero)."""
    support_base = 2.0  # bicubic
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # antialiasing when downscaling
    support = support_base * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    bounds, kk = [], np.zeros((out_size, ksize), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = int(center - support + 0.5)
        if xmin < 0:
            xmin = 0
        xmax = int(center + support + 0.5)
        if xmax > in_size:
            xmax = in_size
        xmax -= xmin
        w = [_bicubic_filter((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = sum(w)
        if ww != 0.0:
            w = [v / ww for v in w]
        for x, v in enumerate(w):
            kk[xx, x] = int(-0.5 + v * (1 << _PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << _PRECISION_BITS))
        bounds.append((xmin, xmax))
    return bounds, kk


def _resample_axis(img: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One 8-bit pass along `axis` (0: rows/vertical, 1: columns/horizontal) of an HWC uint8 image."""
    in_size = img.shape[axis]
    bounds, kk = _precompute_coeffs(in_size, out_size)
    src = np.moveaxis(img.astype(np.int64), axis, 0)  # (in_size, other, C)
    out = np.empty((out_size,) + src.shape[1:], dtype=np.uint8)
    for o, (xmin, n) in enumerate(bounds):
        acc = np.full(src.shape[1:], 1 << (_PRECISION_BITS - 1), dtype=np.int64)
        for x in range(n):
            acc += src[xmin + x] * kk[o, x]
        # clip8: >= 255.x → 255, <= 0 → 0, else >> PRECISION_BITS
        v = np.where(acc >= (1 << _PRECISION_BITS << 8), 255, np.where(acc <= 0, 0, acc >> _PRECISION_BITS))
        out[o] = v.astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def pil_resize_bicubic(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL.Image.fromarray(img).resize((width, height), Image.BICUBIC) for an RGB uint8 HWC array:
    unchanged size → a copy; else the horizontal pass first, then the vertical, each rounded to uint8."""
    assert img.dtype == np.uint8 and img.ndim == 3
    if img.shape[0] == height and img.shape[1] == width:
        return img.copy()
    out = img
    if width != img.shape[1]:
        out = _resample_axis(out, width, axis=1)
    if height != img.shape[0]:
        out = _resample_axis(out, height, axis=0)
    return out


@dataclass
class Qwen2VLImageProcessor:
    do_resize: bool = True
    resample: int = 3  # PILImageResampling.BICUBIC
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: List[float] = field(default_factory=lambda: list(OPENAI_CLIP_MEAN))
    image_std: List[float] = field(default_factory=lambda: list(OPENAI_CLIP_STD))
    do_convert_rgb: bool = True
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2

    def to_hub_dict(self, processor_class: str) -> dict:
        return {
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size,
            "merge_size": self.merge_size,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": processor_class,
        }

    def resized_size(self, height: int, width: int) -> Tuple[int, int]:
        return smart_resize(height, width, factor=self.patch_size * self.merge_size, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def preprocess_one(self, image: np.ndarray):
        """uint8 HWC RGB → (flatten_patches float32 [grid_t*grid_h*grid_w, C*T*P*P], (grid_t, grid_h, grid_w))."""
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        h, w = image.shape[:2]
        rh, rw = self.resized_size(h, w) if self.do_resize else (h, w)
        img = pil_resize_bicubic(image, rh, rw) if self.do_resize else image
        x = img
        if self.do_rescale:  # HF rescale(): float64 multiply, then cast to float32
            x = (x.astype(np.float64) * self.rescale_factor).astype(np.float32)
        if self.do_normalize:  # HF normalize(): float32 arithmetic, channels last
            x = x.astype(np.float32)
            x = (x - np.array(self.image_mean, dtype=np.float32)) / np.array(self.image_std, dtype=np.float32)
        x = np.ascontiguousarray(x.transpose(2, 0, 1))  # CHW
        patches = torch.from_numpy(np.array([x]))  # (1, C, H, W)
        patches = patches.expand(self.temporal_patch_size, -1, -1, -1)  # one image → temporal_patch_size frames
        c = patches.size(1)
        grid_t = patches.size(0) // self.temporal_patch_size
        grid_h, grid_w = rh // self.patch_size, rw // self.patch_size
        m, p, tp = self.merge_size, self.patch_size, self.temporal_patch_size
        flat = (
            patches.reshape(grid_t, tp, c, grid_h // m, m, p, grid_w // m, m, p)
            .permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
            .reshape(grid_t * grid_h * grid_w, c * tp * p * p)
        )
        return flat.contiguous(), (grid_t, grid_h, grid_w)

    def __call__(self, images: Sequence[np.ndarray]):
        """A list of images → pixel_values (all patches, image after image) and image_grid_thw (N, 3)."""
        if len(images) == 0:
            return None, None
        outs = [self.preprocess_one(im) for im in images]
        pixel_values = torch.cat([o[0] for o in outs], dim=0)
        grid = torch.tensor([o[1] for o in outs], dtype=torch.long)
        return pixel_values, grid


def expand_image_tokens(ids: Sequence[int], image_grid_thw, image_token_id: int, merge_size: int) -> List[int]:
    """The processor's text side: each <|image_pad|> becomes t*h*w/merge² copies (one per merged patch)."""
    out, k = [], 0
    for tok in ids:
        if tok == image_token_id:
            n = int(torch.as_tensor(image_grid_thw[k]).prod()) // (merge_size ** 2)
            out.extend([image_token_id] * n)
            k += 1
        else:
            out.append(tok)
    assert image_grid_thw is None or k == len(image_grid_thw), "one <|image_pad|> per image"
    return out


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
