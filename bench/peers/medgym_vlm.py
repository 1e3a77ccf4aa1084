"""medgym-vlm (SPEC §1) in plain PyTorch: a reference reimplementation for Python users.

Decoder-only, GPT-2 style (pre-LN blocks, tied output embedding), with Fuyu-style image input: each
`<|image|>` token expands to N_p = (S/P)^2 consecutive positions, one per P×P patch (row-major), whose
embedding is a linear map of the channel-major flattened pixels (scaled x/255*2-1) plus a learned
per-patch position. Every position also gets the absolute learned position wpe[t].

Module names equal the checkpoint names (`wte.weight`, `h.0.attn.c_attn.weight`, ...), so
`model.load_state_dict(tensors)` reads a medgym checkpoint as is:

    tensors, meta = read_safetensors("policy.safetensors")
    model = MedgymVLM(Config.from_json(meta["config"]))
    model.load_state_dict(tensors)
    logp = token_logprobs(model, [ids_of_seq0, ids_of_seq1], images)  # images: uint8 [n, S, S, C]
    # or over expanded positions (each <|image|> -> N_p positions), as the model runs:
    tokens, patch_src, tok_pos = expand_ids([ids_of_seq0, ids_of_seq1], model.cfg.n_patches)
    logp_positions = model.logprobs(tokens, patch_src, images)

Only torch and numpy are needed (torch >= 1.13; no safetensors package).
"""
import json
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Tokenizer (SPEC §1): ids 0-255 are bytes, then these special tokens in this order.
SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|image|>", "<tool_call>", "</tool_call>",
                  "<tool_response>", "</tool_response>", "<answer>", "</answer>", "<think>", "</think>"]
BOS_ID, EOS_ID, PAD_ID, IMAGE_ID = 256, 257, 258, 259


# ---------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data
# ---------------------------------------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """Returns ({name: torch.Tensor}, metadata dict). F32/F16/ints as stored, BF16 widened to F32."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(buf)[8 + n:]
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        raw = data[begin:end]
        if e["dtype"] == "BF16":  # bf16 = the high 16 bits of a float32
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[e["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(arr.copy()).reshape(e["shape"])
    return tensors, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} (float32/int32/int64/uint8) with string metadata."""
    rev = {np.dtype(v): k for k, v in _DTYPES.items()}
    header, blobs, off = {"__metadata__": dict(metadata or {})}, [], 0
    for name, t in tensors.items():
        arr = np.ascontiguousarray(t.detach().cpu().numpy() if torch.is_tensor(t) else t)
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": rev[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    js = json.dumps(header).encode("utf-8")
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    vocab_size: int = 268
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    max_seq: int = 512
    patch: int = 8
    image_size: int = 64
    channels: int = 1

    @property
    def n_patches(self):
        return (self.image_size // self.patch) ** 2

    @property
    def patch_dim(self):
        return self.channels * self.patch * self.patch

    @staticmethod
    def from_json(text):
        d = json.loads(text) if isinstance(text, str) else dict(text)
        missing = [k for k in Config.__dataclass_fields__ if k not in d]
        if missing:
            raise ValueError(f"checkpoint config lacks {missing}")
        return Config(**{k: int(d[k]) for k in Config.__dataclass_fields__})


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.d = cfg.n_head, cfg.d_model
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, cache=None, pos=0):
        """x [B,T,d]. With cache=(k_buf, v_buf) of shape [B,H,T_max,hd], writes this step's keys and
        values at positions pos..pos+T-1 and attends over 0..pos+T-1 (the KV-cache form)."""
        B, T, d = x.shape
        H, hd = self.n_head, d // self.n_head
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k_buf, v_buf = cache
            k_buf[:, :, pos:pos + T] = k
            v_buf[:, :, pos:pos + T] = v
            k, v = k_buf[:, :, :pos + T], v_buf[:, :, :pos + T]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if T > 1:  # causal mask; a single new query sees every cached position
            S = k.shape[2]
            allowed = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
            att = att.masked_fill(~allowed, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x, cache=None, pos=0):
        x = x + self.attn(self.ln_1(x), cache, pos)
        return x + self.mlp(self.ln_2(x))


class MedgymVLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_seq, cfg.d_model)
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.d_model)
        self.patch_pos = nn.Embedding(cfg.n_patches, cfg.d_model)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=1e-5)

    # --- input -----------------------------------------------------------------------------------
    def patchify(self, images):
        """uint8 [n, S, S, C or 1] (HWC views) -> float [n*N_p, C*P*P]: row-major patches, each flattened
        channel-major (C, P, P), pixels scaled x/255*2-1."""
        n, S, P, C = images.shape[0], self.cfg.image_size, self.cfg.patch, self.cfg.channels
        if images.shape[-1] == 1 and C == 3:  # a grey view given to an RGB model: replicate (as medgym)
            images = images.expand(-1, -1, -1, 3)
        g = S // P
        x = images.to(torch.float32) * (2.0 / 255.0) - 1.0
        x = x.reshape(n, g, P, g, P, C).permute(0, 1, 3, 5, 2, 4)  # n, gy, gx, C, py, px
        return x.reshape(n * g * g, C * P * P)

    def embed(self, tokens, patch_src, images, pos=0):
        """tokens [B,T] int64 text ids (any valid id at patch positions); patch_src [B,T] int64: the
        row of the flattened patch list (image i, patch j -> i*N_p + j) or -1 at text positions."""
        T = tokens.shape[1]
        x = self.wte(tokens)
        if images is not None and images.shape[0] > 0:
            patches = self.patch_embed(self.patchify(images))
            patches = patches + self.patch_pos.weight.repeat(images.shape[0], 1)
            is_patch = (patch_src >= 0).unsqueeze(-1)
            x = torch.where(is_patch, patches[patch_src.clamp(min=0)], x)
        return x + self.wpe.weight[pos:pos + T]

    # --- forward ---------------------------------------------------------------------------------
    def forward(self, tokens, patch_src, images, caches=None, pos=0):
        """Returns logits [B,T,V] = ln_f(x) @ wte^T (tied)."""
        x = self.embed(tokens, patch_src, images, pos)
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i], pos)
        return self.ln_f(x) @ self.wte.weight.t()

    def logprobs(self, tokens, patch_src, images, temperature=1.0):
        """logp[b,t] = log_softmax(logits[b,t-1]/τ)[tokens[b,t]] for t >= 1; logp[:,0] = 0. Values at
        patch positions are meaningless (never trained): mask them."""
        logits = self(tokens, patch_src, images)[:, :-1] / temperature
        lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        return F.pad(lp, (1, 0))

    # --- generation with a KV cache ------------------------------------------------------------------
    def new_cache(self, B, length=None):
        c, hd = self.cfg, self.cfg.d_model // self.cfg.n_head
        n = length or c.max_seq
        return [(torch.zeros(B, c.n_head, n, hd), torch.zeros(B, c.n_head, n, hd)) for _ in range(c.n_layer)]

    @torch.no_grad()
    def generate(self, tokens, patch_src, images, max_new, temperature=0.0, banned=(), generator=None):
        """Prefill the (equal-length) prompts, then decode max_new tokens one position at a time
        with the KV cache. temperature 0 = greedy; `banned` ids are never chosen. Returns the new
        ids [B, max_new]."""
        B, T0 = tokens.shape
        caches = self.new_cache(B, T0 + max_new)
        ban = torch.zeros(self.cfg.vocab_size)
        ban[list(banned)] = float("-inf")
        logits = self(tokens, patch_src, images, caches, 0)[:, -1] + ban
        out = []
        for step in range(max_new):
            if temperature > 0:
                nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)
            else:
                nxt = logits.argmax(-1, keepdim=True)
            out.append(nxt)
            if step + 1 == max_new:
                break
            logits = self(nxt, torch.full_like(nxt, -1), None, caches, T0 + step)[:, -1] + ban
        return torch.cat(out, dim=1)


def expand_ids(rows, n_patches, pad_to=None):
    """Ragged lists of token ids (each <|image|> = one image, in order across the batch) ->
    (tokens [B,T], patch_src [B,T], tok_pos [B,L]) int64: the expanded positions right-padded with
    <|pad|> / -1, and the expanded position of each token (an image token: its first patch; padding
    tokens past a row's end: 0)."""
    exp_tok, exp_src, img = [], [], 0
    L = max(len(ids) for ids in rows)
    tok_pos = torch.zeros((len(rows), L), dtype=torch.int64)
    for b, ids in enumerate(rows):
        tok, src = [], []
        for i, k in enumerate(ids):
            tok_pos[b, i] = len(tok)
            if k == IMAGE_ID:
                tok += [IMAGE_ID] * n_patches
                src += list(range(img * n_patches, (img + 1) * n_patches))
                img += 1
            else:
                tok.append(int(k))
                src.append(-1)
        exp_tok.append(tok)
        exp_src.append(src)
    T = max(pad_to or 0, max(len(t) for t in exp_tok))
    tokens = torch.full((len(rows), T), PAD_ID, dtype=torch.int64)
    patch_src = torch.full((len(rows), T), -1, dtype=torch.int64)
    for b, (t, s) in enumerate(zip(exp_tok, exp_src)):
        tokens[b, :len(t)] = torch.tensor(t, dtype=torch.int64)
        patch_src[b, :len(s)] = torch.tensor(s, dtype=torch.int64)
    return tokens, patch_src, tok_pos


def token_logprobs(model, rows, images, temperature=1.0):
    """medgym's forward() in token space: per sequence, per token, logp of ids[t] given ids[<t]
    (0 at t = 0 and at image tokens). rows: lists of ids; images: uint8 [n, S, S, C] in order."""
    tokens, patch_src, tok_pos = expand_ids(rows, model.cfg.n_patches)
    lp = model.logprobs(tokens, patch_src, images, temperature).gather(1, tok_pos)
    is_img = torch.tensor([[k == IMAGE_ID for k in r] + [True] * (tok_pos.shape[1] - len(r)) for r in rows])
    lp = lp.masked_fill(is_img, 0.0)
    lp[:, 0] = 0.0
    return [lp[b, :len(r)] for b, r in enumerate(rows)]


def load(path):
    """Reads a medgym checkpoint -> (model in eval mode, metadata)."""
    tensors, meta = read_safetensors(path)
    model = MedgymVLM(Config.from_json(meta["config"]))
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return model.eval(), meta


if __name__ == "__main__":  # python3 medgym_vlm.py policy.safetensors: a greedy continuation of a prompt
    import sys

    model, meta = load(sys.argv[1])
    cfg = model.cfg
    prompt = [BOS_ID] + list(b"user: ") + [IMAGE_ID] + list(b"\nWhat do you see?\nassistant: ")
    tokens, patch_src, _ = expand_ids([prompt], cfg.n_patches)
    view = torch.full((1, cfg.image_size, cfg.image_size, cfg.channels), 128, dtype=torch.uint8)
    new = model.generate(tokens, patch_src, view, 16, banned=[BOS_ID, PAD_ID, IMAGE_ID])
    print(json.dumps({"config": cfg.__dict__, "params": sum(p.numel() for p in model.parameters()),
                      "greedy": new[0].tolist()}))
