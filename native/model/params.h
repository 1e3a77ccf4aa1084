// The SPEC §1 tensor table over one flat float32 buffer. Gradients and the AdamW moments are flat
// buffers of the same layout, so clipping is one call and AdamW runs per tensor (weight decay on the
// 2-D tensors only: embeddings and Linear weights; never on biases or LayerNorm parameters).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace medgym::model {

struct TensorInfo {
  std::string name;              // SPEC checkpoint name
  std::vector<int64_t> shape;
  int64_t offset = 0, size = 0;  // in floats, into the flat buffer
  bool decay = false;            // AdamW weight decay applies
};

// Offsets (floats) of one block's tensors.
struct LayerOffsets {
  int64_t ln1_w, ln1_b, qkv_w, qkv_b, attn_proj_w, attn_proj_b, ln2_w, ln2_b, fc_w, fc_b, mlp_proj_w, mlp_proj_b;
};

struct Layout {
  std::vector<TensorInfo> tensors;  // SPEC order
  int64_t total = 0;
  int64_t wte, wpe, patch_w, patch_b, patch_pos, lnf_w, lnf_b;
  std::vector<LayerOffsets> layers;
};

Layout build_layout(const Config& c);

// GPT-2 initialization from a counter-based stream keyed by (seed, tensor index, element index):
// weights N(0, 0.02), residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2L)),
// biases 0, LayerNorm weight 1 and bias 0.
void init_params(const Config& c, const Layout& layout, uint64_t seed, float* params);

}  // namespace medgym::model
