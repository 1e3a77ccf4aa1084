// The policy on a CUDA GPU (compiled only when CMake finds nvcc; see docs/cuda.md "The policy on the
// GPU"): an Accelerator (model/accelerator.h) for a Model, built on the kernels of cuda/kernels.h.
#pragma once
#include <memory>
#include <string>

#include "model/accelerator.h"

namespace medgym::model::gpu {

struct CudaOptions {
  // GEMMs (and the activations that feed them) in bf16 with fp32 accumulation; master weights,
  // gradients, AdamW state, LayerNorm statistics, attention and the head's statistics stay fp32.
  bool bf16 = false;
};

// True when device 0 can run the policy: a driver, a device of compute capability 8.0 or newer, and a
// context in which an allocation and a kernel run. Otherwise false with the runtime's reason in *why.
// `name` (nullable) gets "NVIDIA H100 80GB HBM3 (sm_90)". The first answer is cached.
bool cuda_usable(std::string* why, std::string* name);

// Moves `m` onto the GPU: uploads its parameters (host-initialized, so checkpoints and seeds mean
// the same thing as on the CPU) and frees its host buffers. Throws std::runtime_error when the GPU is
// not usable and std::out_of_range when the config does not fit the kernels (head dim > 256).
std::unique_ptr<Accelerator> make_cuda_accelerator(Model& m, const CudaOptions& o);

}  // namespace medgym::model::gpu
