// The vision tower of Qwen2-VL / Qwen2.5-VL: pixel rows (the processor's patches) -> one embedding
// per merged token, in the processor's order (what replaces the <|image_pad|> tokens).
#pragma once
#include <cstdint>
#include <vector>

#include "model/qwen/config.h"
#include "model/qwen/weights.h"

namespace medgym::qwen {

struct Grid {
  int64_t t = 1, h = 0, w = 0;  // in patches
};

// Window layout of Qwen2.5-VL (get_window_index): the order of merged units that makes each window
// contiguous, and the window bounds in patches (empty windows dropped). Exposed for tests.
struct WindowPlan {
  std::vector<int64_t> index;  // permuted position u' -> original merged unit
  std::vector<int64_t> bounds; // cumulative patch counts, starting at 0
};
WindowPlan window_plan(const VisionConfig& v, const std::vector<Grid>& grids);

// Checks grids against the config (merge divisibility, size limits); throws std::out_of_range.
int64_t vision_patches(const VisionConfig& v, const std::vector<Grid>& grids);

// pixels [n_patches, patch_len] -> out [n_patches / merge², out]. Images attend only within
// themselves (and, in Qwen2.5-VL's window blocks, within their window).
void vision_forward(const Config& c, const Weights& w, const float* pixels, const std::vector<Grid>& grids, float* out);

}  // namespace medgym::qwen
