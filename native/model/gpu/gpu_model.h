// CudaModel: the Accelerator behind make_cuda_accelerator (internal to native/model/gpu).
//
// Layout on the device: P (fp32 master weights), G (fp32 gradients), AdamW moments M and V, all flat
// buffers of the CPU Layout (same offsets); with bf16, Pb is a bf16 copy of P refreshed after every
// change of P (step, write), read by the GEMMs. Activations of the packed rows live in grow-only
// arenas: one set for training / scoring (kept for the backward when asked) and one for generation,
// so a generation between a forward and its backward leaves the saved activations alone, as on the
// CPU. Every call runs on one stream and synchronizes before returning (results are copied back).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/kernels.h"
#include "model/accelerator.h"
#include "model/gpu/cuda_model.h"
#include "model/model.h"

namespace medgym::model::gpu {

using cuda::Bf16;
using cuda::DeviceBuffer;

constexpr float kLnEps = 1e-5f;
// New rows per sequence up to which cached attention uses the decode kernel (as the CPU).
constexpr int64_t kDecodeMaxQueries = 4;

// A device buffer that only grows; growing drops the contents.
template <typename T>
struct Arena {
  DeviceBuffer<T> buf;
  T* get(size_t n) {
    if (buf.size() < n) {
      buf = DeviceBuffer<T>();  // free first: the old and new buffers are never held together
      buf = DeviceBuffer<T>(n);
    }
    return buf.get();
  }
  size_t bytes() const { return buf.size() * sizeof(T); }
};

// Activation pointers of one forward over N rows (model.h's Acts on the device). fp32 mode: every
// GEMM input is fp32 (ln1, atty, ln2, fch_gelu). bf16 mode: the GEMM inputs are the *_b copies, the
// LayerNorm outputs and the MLP pre-activation pass through shared fp32 temporaries (ln_tmp,
// fch_tmp), the pre-activation is kept in bf16 (fch_b) and GELU runs in bf16.
struct GpuActs {
  struct Layer {
    float *x_in, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *lse, *x_mid, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu,
        *x_out;
    Bf16 *ln1_b, *atty_b, *ln2_b, *fch_b, *gelu_b;
  };
  std::vector<Layer> layers;
  float *x0, *ln_tmp, *fch_tmp, *lnf, *lnf_mean, *lnf_rstd, *head_logp, *head_lse, *head_entropy, *patch_tmp;
  Bf16* lnf_b;
  // Lays out N rows over fbase / hbase (null: sizes only); returns the floats and bf16 elements used.
  void plan(const Config& c, int64_t N, int64_t n_patch, bool keep, bool bf16, float* fbase, Bf16* hbase,
            size_t* floats, size_t* halves);
};

// Gradient buffers of a backward over N rows.
struct GpuGrads {
  float *dres, *dtmp, *datty, *dqkv, *dfc, *dgelu, *dlogp, *dent, *dimg;
  Bf16 *dres_b, *dqkv_b, *dgelu_b, *dfc_b;
  void plan(const Config& c, int64_t N, int64_t n_patch, bool bf16, float* fbase, Bf16* hbase, size_t* floats,
            size_t* halves);
};

// Device copies of one batch's row bookkeeping (uploaded per call).
struct Batch {
  Packed pk;
  GpuActs acts;
  Arena<float> f32;
  Arena<Bf16> b16;
  Arena<int64_t> offs, patch_rows, rows;  // embedding offsets [N, 3]; patch rows; last rows (generation)
  Arena<float> patches;
  Arena<int32_t> targets, row_slot, row_pos, kv_len, kv_slot;
  Arena<float> tail;  // generation: last rows, ln_f, logits
  Arena<Bf16> tail_b;
};

// A pool of KV caches, one slot per sequence: per layer K and V of [slots, H, cap, hd] (each head's
// rows contiguous). Grows (slots and cap doubling, cap <= max_seq) by copying; never shrinks while
// the model lives; a released slot is reused.
class KvPool {
 public:
  explicit KvPool(const Config& c) : c_(c) {}
  int32_t acquire();
  void release(int32_t slot);
  // Makes room for every acquired slot and `positions` rows per slot.
  void ensure(int64_t positions, cuda::Stream s);
  float* k(int64_t layer) const { return k_[layer].get(); }
  float* v(int64_t layer) const { return v_[layer].get(); }
  int64_t slot_stride() const { return c_.H * cap_ * c_.hd(); }
  int64_t head_stride() const { return cap_ * c_.hd(); }
  size_t bytes() const;

 private:
  const Config c_;
  std::mutex mu_;  // acquire/release may come from a cache destroyed on another thread
  std::vector<int32_t> free_;
  int32_t used_ = 0;
  int64_t slots_ = 0, cap_ = 0;
  std::vector<DeviceBuffer<float>> k_, v_;
};

struct KvSlot : AcceleratorCache {
  KvSlot(std::shared_ptr<KvPool> p, int32_t s) : pool(std::move(p)), slot(s) {}
  ~KvSlot() override { pool->release(slot); }
  std::shared_ptr<KvPool> pool;
  int32_t slot;
};

class CudaModel : public Accelerator {
 public:
  CudaModel(Model& m, const CudaOptions& o, int device, std::string name);
  ~CudaModel() override;

  std::string describe() const override;
  bool bf16() const override { return bf16_; }
  int64_t forward(const std::vector<SeqInput>& seqs, float temperature, bool want_entropy, bool keep, float* logp,
                  float* entropy) override;
  void backward(const float* dlogp, const float* dentropy) override;
  bool has_saved() const override { return saved_; }
  void drop_saved() override;
  double cross_entropy(const std::vector<SeqInput>& seqs, bool mean, double scale, int64_t* count) override;
  StepInfo step(const AdamHyper& hp) override;
  void zero_grad() override;
  void extend(const std::vector<SeqInput>& seqs, float* logits) override;
  bool has_moments() const override { return M_.size() != 0; }
  void read(FlatBuffer which, int64_t offset, int64_t n, float* out) override;
  void write(FlatBuffer which, int64_t offset, int64_t n, const float* in) override;
  void check_rows(int64_t rows, bool keep) override;

 private:
  void activate() const;  // makes this model's device current on the calling thread
  void ensure_moments();
  void refresh_bf16(int64_t offset, int64_t n);  // Pb = bf16(P) over a range
  // Embeddings + the L blocks over the rows of `pk` into b.acts (generation: K/V into the pool).
  struct Decode {
    bool on = false;
    std::vector<int32_t> slot;  // per sequence: its cache slot
    int64_t max_len = 0;        // longest sequence after this call (positions)
    const int32_t *row_slot = nullptr, *row_pos = nullptr, *kv_len = nullptr, *kv_slot = nullptr;  // device
  };
  // y[M, n] += x[M, k] W^T with W the [n, k] tensor at offset w (fp32: x; bf16: xb and the bf16 copy of W).
  void linear(const float* x, const Bf16* xb, int64_t M, int64_t n, int64_t k, int64_t w, float* y);
  void trunk(const std::vector<SeqInput>& seqs, Batch& b, bool keep, const Decode& dec);
  void attention(const std::vector<SeqInput>& seqs, const Batch& b, int64_t layer, const Decode& dec);
  void attention_backward(const Packed& pk, const GpuActs::Layer& A, const GpuGrads& g);
  void backward_layer(int64_t l, const GpuActs::Layer& A, const GpuGrads& g, int64_t N);
  void backward_embeddings(const Batch& b, const GpuGrads& g);

  Model& m_;
  const Config c_;
  const Layout& lay_;
  const bool bf16_;
  const int device_;
  const std::string name_;
  cuda::Stream st_ = nullptr;
  DeviceBuffer<float> P_, G_, M_, V_;
  DeviceBuffer<Bf16> Pb_;
  DeviceBuffer<GradClipResult> clip_;
  DeviceBuffer<double> sum_sq_;
  Batch train_, gen_;
  bool saved_ = false;
  float temperature_ = 1.0f;
  Arena<float> grad_f32_;
  Arena<Bf16> grad_b16_;
  Arena<int64_t> seg_;  // backward: embedding-gradient segments
  std::shared_ptr<KvPool> kv_;
};

}  // namespace medgym::model::gpu
