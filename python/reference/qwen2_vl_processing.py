"""The slow Qwen2-VL image processor (image_processing_qwen2_vl.py) with Pillow's bicubic resize, and image-pad expansion."""
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
