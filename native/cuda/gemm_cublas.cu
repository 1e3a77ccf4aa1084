// The cuBLAS path of the GEMMs (see gemm_cublas.h). Row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, so B goes first and the dimensions swap; the transposes carry over as they are.
// fp32 runs without TF32 (CUBLAS_COMPUTE_32F, the handle's default math), bf16 accumulates in fp32.
#include "cuda/gemm_cublas.h"

#include <library_types.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/common.cuh"

#ifdef MEDGYM_CUBLAS
#include <cublas_v2.h>
#endif

namespace medgym::cuda {

namespace {
bool cublas_enabled() {
#ifdef MEDGYM_CUBLAS
  static const bool on = [] {
    const char* e = std::getenv("MEDGYM_CUBLAS");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
#else
  return false;
#endif
}
}  // namespace

#ifdef MEDGYM_CUBLAS
namespace {

cublasHandle_t handle() {
  // One handle per host thread and device (cuBLAS handles are not to be shared across threads).
  thread_local cublasHandle_t h[16] = {};
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 0 || dev >= 16) throw CudaError(0, "cublasCreate", "device index out of range for the handle cache");
  if (!h[dev]) {
    const cublasStatus_t st = cublasCreate(&h[dev]);
    if (st != CUBLAS_STATUS_SUCCESS)
      throw CudaError(static_cast<int>(st), "cublasCreate", std::string("cuBLAS: ") + cublasGetStatusString(st));
  }
  return h[dev];
}

bool fits(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) return false;
  return true;
}

bool gemm_ex(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
             const void* B, int64_t ldb, cudaDataType_t in_type, float beta, void* C, int64_t ldc,
             cudaDataType_t c_type, cudaStream_t s, const char* name) {
  if (!cublas_enabled() || !fits(M, N, K, lda, ldb, ldc)) return false;
  cublasHandle_t h = handle();
  cublasStatus_t st = cublasSetStream(h, s);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
                      static_cast<int>(M), static_cast<int>(K), &alpha, B, in_type, static_cast<int>(ldb), A, in_type,
                      static_cast<int>(lda), &beta, C, c_type, static_cast<int>(ldc), CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(static_cast<int>(st), name, std::string("cuBLAS: ") + cublasGetStatusString(st));
  return true;
}

}  // namespace
#endif

namespace {

#ifdef MEDGYM_CUBLAS
template <class T>
constexpr cudaDataType_t data_type();
template <>
constexpr cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <>
constexpr cudaDataType_t data_type<__nv_bfloat16>() { return CUDA_R_16BF; }
#endif

template <class In, class Out>
bool gemm_typed(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const In* A, int64_t lda, const In* B,
                int64_t ldb, float beta, Out* C, int64_t ldc, cudaStream_t s, const char* name) {
#ifdef MEDGYM_CUBLAS
  return gemm_ex(ta, tb, M, N, K, alpha, A, lda, B, ldb, data_type<In>(), beta, C, ldc, data_type<Out>(), s, name);
#else
  return false;
#endif
}

}  // namespace

bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s) {
  return gemm_typed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s, "sgemm (cuBLAS)");
}

bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A, int64_t lda,
                 const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s) {
  return gemm_typed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s, "gemm_bf16 (cuBLAS)");
}

bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A, int64_t lda,
                 const __nv_bfloat16* B, int64_t ldb, float beta, __nv_bfloat16* C, int64_t ldc, cudaStream_t s) {
  return gemm_typed(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s, "gemm_bf16_out (cuBLAS)");
}

const char* gemm_backend() { return cublas_enabled() ? "cuBLAS" : "built-in (WMMA / SIMT)"; }

}  // namespace medgym::cuda
