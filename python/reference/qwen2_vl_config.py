"""Qwen2-VL / Qwen2.5-VL configuration: HF's names and defaults (configuration_qwen2_vl.py, configuration_qwen2_5_vl.py)."""
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
