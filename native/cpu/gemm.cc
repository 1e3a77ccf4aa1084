// Packed, cache-blocked, SIMD-dispatched SGEMM (BLIS/GotoBLAS design).
//
//   for jc in N by NC:                      (this thread's columns)
//     for pc in K by KC:                    beta applies on the first K block only, then 1
//       pack op(B)[pc, jc] -> NR-wide panels          (kc x nc, lives in L2)
//       for ic in M by MC:                  (this thread's rows)
//         pack op(A)[ic, pc] -> MR-tall panels
//         for ir in MC by MR:               A micro-panel (MR x kc) stays in L1
//           for jr in NC by NR:             B micro-panels stream from L2
//             micro-kernel MR x NR          (edge tiles through a temporary tile)
//
// Packing absorbs the transposes, so one micro-kernel per SIMD level serves all four cases.
// Threads split M (MR-aligned ranges) or N (NR-aligned ranges) statically and each packs what it
// needs, without barriers. Every C element is computed by the same sequence of operations whatever
// its tile or thread, so results are bit-identical for any thread count.
// Small problems skip packing: M <= dot_max_m with op(B) = B^T (x @ W^T in generation) and tiny
// ones of any layout use register-blocked dot products over contiguous rows; M <= axpy_max_m with
// op(B) = B streams rows of B through vector accumulators (axpy path).
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/cpu_features.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_internal.h"
#include "cpu/threadpool.h"

namespace medgym {

using gemm_detail::GemmImpl;

namespace {

constexpr int64_t kTinyWork = 32 * 32 * 32;  // M*N*K at most this: dot-product path for any layout
constexpr int64_t kFlopsPerThread = 1 << 19;  // less work than this per thread is not worth a thread

// A growable 64-byte aligned buffer, one per thread and purpose, reused across calls.
class Workspace {
 public:
  ~Workspace() { std::free(p_); }
  float* get(int64_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = nullptr, cap_ = 0;
      int64_t bytes = ((n * static_cast<int64_t>(sizeof(float)) + 63) / 64) * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
      if (!p_) throw std::bad_alloc();
      cap_ = bytes / static_cast<int64_t>(sizeof(float));
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  int64_t cap_ = 0;
};

thread_local Workspace t_pack_a, t_pack_b, t_tile, t_tiny_a, t_tiny_b, t_wide_b;

const GemmImpl& current_impl() {
  switch (simd_level()) {
    case SimdLevel::Avx512: return gemm_detail::impl_avx512();
    case SimdLevel::Avx2Fma: return gemm_detail::impl_avx2();
    default: return gemm_detail::impl_portable();
  }
}

int threads_for(int64_t M, int64_t N, int64_t K, int64_t max_parts) {
  double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  double t = std::min(static_cast<double>(max_parts), std::max(1.0, flops / kFlopsPerThread));
  return static_cast<int>(std::min(t, 1024.0));
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) std::fill(c, c + N, 0.0f);
    else if (beta != 1.0f) for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

// The macro-kernel: packed A block (mc x kc) times packed B block (kc x nc) into C[mc, nc].
void macro_kernel(const GemmImpl& im, int64_t mc, int64_t nc, int64_t kc, float alpha, const float* pa,
                  const float* pb, float beta, float* C, int64_t ldc) {
  const int mr = im.mr, nr = im.nr;
  float* tile = nullptr;
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ir);
    const float* a = pa + ir * kc;
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t cols = std::min<int64_t>(nr, nc - jr);
      const float* b = pb + jr * kc;
      float* c = C + ir * ldc + jr;
      if (rows == mr && cols == nr) {
        im.kernel(kc, a, b, c, ldc, alpha, beta);
        continue;
      }
      if (!tile) tile = t_tile.get(static_cast<int64_t>(mr) * nr);
      if (beta != 0.0f)
        for (int64_t r = 0; r < rows; ++r) std::memcpy(tile + r * nr, c + r * ldc, cols * sizeof(float));
      im.kernel(kc, a, b, tile, nr, alpha, beta);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(c + r * ldc, tile + r * nr, cols * sizeof(float));
    }
  }
}

// One thread's share: rows [m0, m1) x columns [n0, n1) of C. `pack_b(k0, kc, j0, nc, dst)` packs
// op(B)[k0:k0+kc, j0:j0+nc] into NR-wide panels (im.pack_b on fp32 B, or bf16 rows widened).
template <typename PackB>
void packed_range(const GemmImpl& im, bool trans_a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K,
                  int64_t kc_max, float alpha, const float* A, int64_t lda, const PackB& pack_b, float beta,
                  float* C, int64_t ldc) {
  if (m0 >= m1 || n0 >= n1) return;
  // Block sizes are whole micro-tiles (the packed buffers hold whole, zero-padded panels).
  const int64_t mc_max = std::min(std::max<int64_t>(1, im.mc / im.mr), (m1 - m0 + im.mr - 1) / im.mr) * im.mr;
  const int64_t nc_max = std::min(std::max<int64_t>(1, im.nc / im.nr), (n1 - n0 + im.nr - 1) / im.nr) * im.nr;
  float* pa = t_pack_a.get(mc_max * kc_max);
  float* pb = t_pack_b.get(nc_max * kc_max);
  for (int64_t jc = n0; jc < n1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;
      pack_b(pc, kc, jc, nc, pb);
      for (int64_t ic = m0; ic < m1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, m1 - ic);
        im.pack_a(trans_a, A, lda, ic, mc, pc, kc, pa);
        macro_kernel(im, mc, nc, kc, alpha, pa, pb, beta_k, C + ic * ldc + jc, ldc);
      }
    }
  }
}

// Dot-product path: A is [M,K] (row stride lda), B is [N,K] (row stride ldb). Splits N.
void dot_path(const GemmImpl& im, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t blocks = (N + 7) / 8;
  parallel_run([&](int tid, int nthreads) {
    int64_t b0, b1;
    static_chunk(blocks, tid, nthreads, &b0, &b1);
    int64_t n0 = b0 * 8, n1 = std::min(N, b1 * 8);
    if (n0 < n1) im.dot_rows(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }, threads_for(M, N, K, blocks));
}

// Small-M path for op(B) = B [K,N]: no packing, B rows streamed. Splits N in blocks of 64.
void axpy_path(const GemmImpl& im, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t blocks = (N + 63) / 64;
  parallel_run([&](int tid, int nthreads) {
    int64_t b0, b1;
    static_chunk(blocks, tid, nthreads, &b0, &b1);
    int64_t n0 = b0 * 64, n1 = std::min(N, b1 * 64);
    if (n0 < n1) im.axpy_rows(M, n0, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
  }, threads_for(M, N, K, blocks));
}

// Tiny problems of any layout: copy op(A) to [M,K] rows and op(B)^T to [N,K] rows, then dot path.
void tiny_path(const GemmImpl& im, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (trans_a) {
    float* a = t_tiny_a.get(M * K);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) a[i * K + k] = A[k * lda + i];
    A = a, lda = K;
  }
  if (!trans_b) {
    float* b = t_tiny_b.get(N * K);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) b[j * K + k] = B[k * ldb + j];
    B = b, ldb = K;
  }
  im.dot_rows(M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

namespace gemm_detail {

// The packed path with an explicit implementation (the driver of sgemm; also used to tune blocking).
// The packed driver over a B packer (see packed_range).
template <typename PackB>
void packed_driver(const GemmImpl& im, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const PackB& pack_b, float beta, float* C, int64_t ldc) {
  // K blocks of (nearly) equal size, each at most im.kc: a shape-only choice, so every thread and
  // thread count accumulates the same K ranges.
  const int64_t kblocks = (K + im.kc - 1) / im.kc;
  const int64_t kc_max = (K + kblocks - 1) / kblocks;
  const int64_t mtiles = (M + im.mr - 1) / im.mr, ntiles = (N + im.nr - 1) / im.nr;
  // Split the larger dimension: each thread then re-packs the smaller operand only.
  const bool split_m = M >= N ? mtiles >= 2 || ntiles < 2 : ntiles < 2;
  const int64_t parts = split_m ? mtiles : ntiles;
  parallel_run([&](int tid, int nthreads) {
    int64_t t0, t1;
    static_chunk(parts, tid, nthreads, &t0, &t1);
    if (split_m)
      packed_range(im, trans_a, t0 * im.mr, std::min(M, t1 * im.mr), 0, N, K, kc_max, alpha, A, lda, pack_b, beta,
                   C, ldc);
    else
      packed_range(im, trans_a, 0, M, t0 * im.nr, std::min(N, t1 * im.nr), K, kc_max, alpha, A, lda, pack_b, beta,
                   C, ldc);
  }, threads_for(M, N, K, parts));
}

void sgemm_packed(const GemmImpl& im, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  auto pack_b = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    im.pack_b(trans_b, B, ldb, k0, kc, j0, nc, dst);
  };
  packed_driver(im, trans_a, M, N, K, alpha, A, lda, pack_b, beta, C, ldc);
}

void sgemm_packed_bf16w(const GemmImpl& im, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const uint16_t* W, int64_t ldw, float beta, float* C, int64_t ldc) {
  // Each NR-wide panel: its W rows' K block widened into a small fp32 block (L1/L2), then packed by
  // the fp32 packer, so the panels hold exactly what sgemm_packed would pack from the widened W.
  auto pack_b = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    float* wide = t_wide_b.get(static_cast<int64_t>(im.nr) * kc);
    for (int64_t p = 0; p < nc; p += im.nr) {
      const int64_t rows = std::min<int64_t>(im.nr, nc - p);
      for (int64_t r = 0; r < rows; ++r) bf16_to_fp32(W + (j0 + p + r) * ldw + k0, wide + r * kc, kc);
      im.pack_b(true, wide, kc, 0, kc, 0, rows, dst + p * kc);
    }
  };
  packed_driver(im, false, M, N, K, alpha, A, lda, pack_b, beta, C, ldc);
}

void sgemm_axpy(const GemmImpl& im, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  axpy_path(im, trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_dot(const GemmImpl& im, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  dot_path(im, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace gemm_detail

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  // As in BLAS: with K == 0 or alpha == 0, A and B are not read and C = beta * C.
  if (K <= 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);
  const GemmImpl& im = current_impl();
  // Path choices depend on the shape only (never on the thread count), so results stay identical.
  if (!trans_a && trans_b && M <= im.dot_max_m) return dot_path(im, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (!trans_b && M <= im.axpy_max_m) return axpy_path(im, trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (static_cast<double>(M) * N * K <= kTinyWork) return tiny_path(im, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_detail::sgemm_packed(im, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_bf16w(int64_t M, int64_t N, int64_t K, float alpha, const float* X, int64_t ldx, const uint16_t* W,
                 int64_t ldw, float beta, float* Y, int64_t ldy) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) return scale_c(M, N, beta, Y, ldy);
  gemm_detail::sgemm_packed_bf16w(current_impl(), M, N, K, alpha, X, ldx, W, ldw, beta, Y, ldy);
}

}  // namespace medgym
