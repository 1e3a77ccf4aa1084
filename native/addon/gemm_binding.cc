// gemm / gemmReference (+ Async): thin wrappers over native/cpu/gemm.h.
//   gemm({A, B, C, M, N, K, transA?, transB?, alpha?, beta?}): C = alpha * op(A) @ op(B) + beta * C,
//   row-major and contiguous: A holds M*K floats ([M,K], or [K,M] with transA), B holds K*N ([K,N],
//   or [N,K] with transB), C holds M*N ([M,N]).
#include <cfloat>
#include <cstdint>

#include "addon/args.h"
#include "cpu/gemm.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1;

struct GemmCall {
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* A = nullptr;
  const float* B = nullptr;
  float* C = nullptr;
};

bool overlaps(const void* p, size_t pn, const void* q, size_t qn) {
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return pn && qn && a < b + qn && b < a + pn;
}

GemmCall parse(Args& a) {
  GemmCall g;
  g.M = a.integer("M", 0, kMaxDim);
  g.N = a.integer("N", 0, kMaxDim);
  g.K = a.integer("K", 0, kMaxDim);
  g.ta = a.boolean("transA", false);
  g.tb = a.boolean("transB", false);
  g.alpha = static_cast<float>(a.number("alpha", -FLT_MAX, FLT_MAX, 1.0));
  g.beta = static_cast<float>(a.number("beta", -FLT_MAX, FLT_MAX, 0.0));
  auto A = a.f32("A", checked_mul(a, {g.M, g.K}));
  auto B = a.f32("B", checked_mul(a, {g.K, g.N}));
  auto C = a.f32_out("C", checked_mul(a, {g.M, g.N}));
  if (overlaps(C.data, C.length * sizeof(float), A.data, A.length * sizeof(float)))
    a.range_error("`C` must not share memory with `A`");
  if (overlaps(C.data, C.length * sizeof(float), B.data, B.length * sizeof(float)))
    a.range_error("`C` must not share memory with `B`");
  g.A = A.data, g.B = B.data, g.C = C.data;
  return g;
}

template <bool kReference>
Napi::Value Gemm(const Napi::CallbackInfo& info, bool async) {
  Args a(info, kReference ? "gemmReference" : "gemm", async);
  GemmCall g = parse(a);
  return a.run(async, [g] {
    const int64_t lda = g.ta ? g.M : g.K, ldb = g.tb ? g.K : g.N, ldc = g.N;
    if (kReference) sgemm_ref(g.ta, g.tb, g.M, g.N, g.K, g.alpha, g.A, lda, g.B, ldb, g.beta, g.C, ldc);
    else sgemm(g.ta, g.tb, g.M, g.N, g.K, g.alpha, g.A, lda, g.B, ldb, g.beta, g.C, ldc);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "gemm", Gemm<false>);
  export_sync_async(env, exports, "gemmReference", Gemm<true>);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
