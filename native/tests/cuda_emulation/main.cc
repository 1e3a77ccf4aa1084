// gpu_policy_emulated: the GPU policy (native/model/gpu) against the CPU policy, with the checks of
// medgym_cuda_check's "policy" suite (native/model/gpu/check/check_policy.cc), on the CPU emulation of
// the CUDA API (emulate.cc). Catches wrong offsets, strides, views, uploads and bookkeeping in the GPU
// model's host code on any machine; the CUDA kernels are checked on a GPU by medgym_cuda_check.
#include <cstdio>

#include "cuda/check/check.h"

int main() {
  medgym::check::Checker c;
  medgym::check::check_policy(c);
  c.print_summary();
  std::printf("\n%zu checks, %d failed (GPU policy host logic on the CPU emulation of CUDA)\n", c.results.size(),
              c.failures);
  return c.failures ? 1 : 0;
}
