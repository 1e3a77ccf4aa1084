// policyCudaProbe() and the device half of policyCreate: with MEDGYM_WITH_CUDA (CMake found nvcc)
// the policy can move onto the GPU (native/model/gpu); without it, asking for 'cuda' says how to get it.
#include "addon/policy_device.h"

#include <stdexcept>

#include "addon/args.h"
#include "model/accelerator.h"
#ifdef MEDGYM_WITH_CUDA
#include "model/gpu/cuda_model.h"
#endif

namespace medgym::addon {

#ifdef MEDGYM_WITH_CUDA
CudaProbe probe_cuda() {
  CudaProbe p;
  p.compiled = true;
  p.usable = model::gpu::cuda_usable(&p.reason, &p.name);
  if (p.usable) p.reason.clear();
  return p;
}

void use_cuda(model::Model& m, bool bf16) {
  model::gpu::CudaOptions o;
  o.bf16 = bf16;
  m.accel = model::gpu::make_cuda_accelerator(m, o);
}
#else
constexpr const char* kNoCuda =
    "this medgym addon was built without CUDA (the prebuilt, or CMake found no nvcc): install the CUDA toolkit (nvcc 12 or newer) "
    "and build it with `npx medgym build --cuda` (in a clone: `npm run build:native`), or use device 'cpu'";

CudaProbe probe_cuda() {
  CudaProbe p;
  p.reason = kNoCuda;
  return p;
}

void use_cuda(model::Model&, bool) { throw std::runtime_error(kNoCuda); }
#endif

std::string device_description(const model::Model& m) { return m.accel ? m.accel->describe() : "cpu"; }

namespace {

// policyCudaProbe() -> {compiled, usable, reason, name}
Napi::Value CudaProbeFn(const Napi::CallbackInfo& info) {
  const CudaProbe p = probe_cuda();
  auto o = Napi::Object::New(info.Env());
  o.Set("compiled", p.compiled);
  o.Set("usable", p.usable);
  o.Set("reason", p.reason);
  o.Set("name", p.name);
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("policyCudaProbe", Napi::Function::New(env, CudaProbeFn, "policyCudaProbe"));
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
