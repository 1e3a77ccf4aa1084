// Where a policy model runs: the CPU, or a CUDA GPU when the addon was built with CUDA (the only
// addon file that knows whether it was). No N-API in this header.
#pragma once
#include <string>

#include "model/model.h"

namespace medgym::addon {

struct CudaProbe {
  bool compiled = false;  // the addon was built with the CUDA sources
  bool usable = false;    // a device can run the policy now
  std::string reason;     // why not (empty when usable)
  std::string name;       // the device, e.g. "NVIDIA H100 80GB HBM3 (sm_90)"
};
CudaProbe probe_cuda();

// Moves `m` onto the GPU (model/accelerator.h). Throws std::runtime_error with the reason when it
// cannot (no CUDA in this build, no usable device) and std::out_of_range for a config the kernels
// do not support.
void use_cuda(model::Model& m, bool bf16);

// "cpu", or the accelerator's description.
std::string device_description(const model::Model& m);

}  // namespace medgym::addon
