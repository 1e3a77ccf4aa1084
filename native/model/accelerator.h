// A device the model can run on instead of the CPU (today: CUDA, native/model/gpu/). When
// Model::accel is set, Model's forward / backward / cross_entropy / step / zero_grad / extend run
// there with the same contracts (model.h), and the flat buffers (params, grads, AdamW moments) live
// on the device: read and write them through read() / write() (Model's host vectors are then empty).
// Batches are packed on the host exactly as on the CPU (Model::pack), so ids, images, masks and
// positions mean the same thing; shared-prefix groups are computed unshared (same outputs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace medgym::model {

// A sequence's KV cache on the device (KVCache::accel); destroyed with its KVCache.
struct AcceleratorCache {
  virtual ~AcceleratorCache() = default;
};

enum class FlatBuffer { Params = 0, Grads = 1, M = 2, V = 3 };

class Accelerator {
 public:
  virtual ~Accelerator() = default;
  // E.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90), bf16".
  virtual std::string describe() const = 0;
  virtual bool bf16() const = 0;

  virtual int64_t forward(const std::vector<SeqInput>& seqs, float temperature, bool want_entropy, bool keep,
                          float* logp, float* entropy) = 0;
  virtual void backward(const float* dlogp, const float* dentropy) = 0;
  virtual bool has_saved() const = 0;
  virtual void drop_saved() = 0;
  virtual double cross_entropy(const std::vector<SeqInput>& seqs, bool mean, double scale, int64_t* count) = 0;
  virtual StepInfo step(const AdamHyper& hp) = 0;
  virtual void zero_grad() = 0;
  virtual void extend(const std::vector<SeqInput>& seqs, float* logits) = 0;

  // The flat buffers, elements [offset, offset + n) (Layout offsets). M and V exist after the first
  // step or write; writing one that does not exist yet creates it filled with zeros.
  virtual bool has_moments() const = 0;
  virtual void read(FlatBuffer which, int64_t offset, int64_t n, float* out) = 0;
  virtual void write(FlatBuffer which, int64_t offset, int64_t n, const float* in) = 0;

  // Throws std::out_of_range (naming `tokens`) when a forward over `rows` packed rows (keep: with the
  // activations and gradient buffers of a backward) would not fit in the device's memory.
  virtual void check_rows(int64_t rows, bool keep) = 0;
};

}  // namespace medgym::model
