// Device activation and gradient layouts of CudaModel (the CPU's Acts::allocate, on two arenas: fp32
// and bf16). Every array starts on a 64-element boundary (256 bytes for fp32, 128 for bf16), so the
// bf16 GEMMs' 16-byte vector loads apply whenever the row length allows them.
#include "model/gpu/gpu_model.h"

namespace medgym::model::gpu {

namespace {

constexpr size_t kAlign = 64;

// Hands out consecutive, aligned ranges of a base (null base: counts only).
template <typename T>
struct Carver {
  T* base;
  size_t used = 0;
  T* take(int64_t rows, int64_t per_row) {
    T* p = base ? base + used : nullptr;
    used += (static_cast<size_t>(rows * per_row) + kAlign - 1) / kAlign * kAlign;
    return p;
  }
};

}  // namespace

void GpuActs::plan(const Config& c, int64_t N, int64_t n_patch, bool keep, bool bf16, float* fbase, Bf16* hbase,
                   size_t* floats, size_t* halves) {
  Carver<float> f{fbase};
  Carver<Bf16> h{hbase};
  const int64_t d = c.d;
  layers.assign(c.L, Layer{});
  x0 = f.take(N, d);
  ln_tmp = bf16 ? f.take(N, d) : nullptr;
  fch_tmp = bf16 ? f.take(N, 4 * d) : nullptr;
  for (int64_t l = 0; l < c.L; ++l) {
    Layer& A = layers[l];
    if (!keep && l > 0) {  // scoring / generation: one set of buffers, the residual updated in place
      A = layers[0];
      continue;
    }
    A.x_in = l == 0 ? x0 : layers[l - 1].x_out;
    A.ln1_mean = f.take(N, 1), A.ln1_rstd = f.take(N, 1);
    A.qkv = f.take(N, 3 * d), A.atty = f.take(N, d), A.lse = f.take(N, c.H);
    A.x_mid = keep ? f.take(N, d) : x0;
    A.ln2_mean = f.take(N, 1), A.ln2_rstd = f.take(N, 1);
    A.x_out = keep ? f.take(N, d) : x0;
    if (bf16) {
      A.ln1 = A.ln2 = ln_tmp, A.fch = fch_tmp, A.fch_gelu = nullptr;
      A.ln1_b = h.take(N, d), A.atty_b = h.take(N, d), A.ln2_b = h.take(N, d);
      A.fch_b = h.take(N, 4 * d), A.gelu_b = h.take(N, 4 * d);
    } else {
      A.ln1 = f.take(N, d), A.ln2 = f.take(N, d), A.fch = f.take(N, 4 * d), A.fch_gelu = f.take(N, 4 * d);
      A.ln1_b = A.atty_b = A.ln2_b = A.fch_b = A.gelu_b = nullptr;
    }
  }
  lnf = f.take(N, d), lnf_mean = f.take(N, 1), lnf_rstd = f.take(N, 1);
  head_logp = f.take(N, 1), head_lse = f.take(N, 1), head_entropy = f.take(N, 1);
  patch_tmp = f.take(n_patch, d);
  lnf_b = bf16 ? h.take(N, d) : nullptr;
  *floats = f.used;
  *halves = h.used;
}

void GpuGrads::plan(const Config& c, int64_t N, int64_t n_patch, bool bf16, float* fbase, Bf16* hbase,
                    size_t* floats, size_t* halves) {
  Carver<float> f{fbase};
  Carver<Bf16> h{hbase};
  const int64_t d = c.d;
  dres = f.take(N, d), dtmp = f.take(N, d), datty = f.take(N, d), dqkv = f.take(N, 3 * d);
  dlogp = f.take(N, 1), dent = f.take(N, 1), dimg = f.take(n_patch, d);
  if (bf16) {
    dfc = dgelu = nullptr;
    dres_b = h.take(N, d), dqkv_b = h.take(N, 3 * d), dgelu_b = h.take(N, 4 * d), dfc_b = h.take(N, 4 * d);
  } else {
    dfc = f.take(N, 4 * d), dgelu = f.take(N, 4 * d);
    dres_b = dqkv_b = dgelu_b = dfc_b = nullptr;
  }
  *floats = f.used;
  *halves = h.used;
}

}  // namespace medgym::model::gpu
