// cuBLAS behind the GEMM calls of kernels.h, when the build found it (CMake: CUDA::cublas, option
// MEDGYM_CUBLAS). Same contract as the built-in kernels; the early outs (empty C, K == 0, alpha == 0)
// stay with the caller. MEDGYM_CUBLAS=0 in the environment selects the built-in kernels at run time.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace medgym::cuda {

// True when the call was made by cuBLAS; false when cuBLAS is not built in, is turned off, or the
// sizes do not fit its int arguments (the caller then runs its own kernel).
bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s);
bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A, int64_t lda,
                 const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s);
bool cublas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A, int64_t lda,
                 const __nv_bfloat16* B, int64_t ldb, float beta, __nv_bfloat16* C, int64_t ldc, cudaStream_t s);

}  // namespace medgym::cuda
