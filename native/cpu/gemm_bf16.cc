// GEMM with bf16 weights (gemm_bf16.h): the reference, the conversions, and the driver of the
// dot-product kernels (gemm_bf16_internal.h).
//
//   for each chunk of X rows (at most 16 MB of packed X):
//     pack X rows -> fp32 (Exact) or bf16 (vdpbf16ps) rows in the kernel's k order (threads split rows)
//     threads split the columns (W rows), and the chunk's rows too when N is small:
//       for jc in this thread's columns by NC:        W[jc : jc+NC, k block] stays in L2
//         for each K block kb:                        fixed by K only
//           block kernel: for each 4 rows of X       (their packed K block stays in L1)
//                           for each RN rows of W    (from memory once, then from L2)
//                             4 x RN dot products over the K block, added into Y
//   With at most 4 rows (decode) NC is 8: each W row is then read once, start to end.
//
// Nothing in a Y element's arithmetic depends on M, its row, its tile or its thread, so results are
// batch invariant and identical for any thread count (see gemm_bf16_internal.h).
#include "cpu/gemm_bf16.h"

#include <algorithm>

#include "cpu/cpu_features.h"
#include "cpu/gemm_bf16_internal.h"
#include "cpu/threadpool.h"

namespace medgym {

using bf16_detail::Bf16Impl;

// ---- reference and conversions ------------------------------------------------------------------

void gemm_bf16_ref(Bf16Mode mode, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const uint16_t* W,
                   int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        float x = X[i * ldx + k];
        if (mode == Bf16Mode::Bf16Dot) x = round_to_bf16(x);
        acc += static_cast<double>(x) * bf16_to_fp32(W[j * ldw + k]);
      }
      if (bias) acc += bias[j];
      float* y = &Y[i * ldy + j];
      if (beta != 0.0f) acc += static_cast<double>(beta) * *y;
      *y = static_cast<float>(acc);
    }
}

void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_bf16(src[i]);
}

void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(src[i]);
}

// ---- the fast path ------------------------------------------------------------------------------

namespace {

constexpr int64_t kFlopsPerThread = 1 << 19;        // less work than this per thread is not worth a thread
constexpr int64_t kChunkBytes = int64_t(16) << 20;  // packed X per chunk of rows
constexpr int64_t kColUnit = 16;                     // columns are split between threads in these units
constexpr int64_t kRowUnit = 4;                      // rows, when they are split too

thread_local bf16_detail::AlignedBuffer t_packed_x;  // packed X of the calling thread

const Bf16Impl& pick_impl(Bf16Mode mode) {
  switch (simd_level()) {
    case SimdLevel::Avx512:
      if (mode == Bf16Mode::Bf16Dot && cpu_features().avx512bf16) return bf16_detail::impl_avx512_dpbf16();
      return bf16_detail::impl_avx512();
    case SimdLevel::Avx2Fma: return bf16_detail::impl_avx2();
    default: return bf16_detail::impl_portable();
  }
}

int threads_for(int64_t M, int64_t N, int64_t K, int64_t max_parts) {
  double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  double t = std::min(static_cast<double>(max_parts), std::max(1.0, flops / kFlopsPerThread));
  return static_cast<int>(std::min(t, 1024.0));
}

void pack_x(const Bf16Impl& im, bool round, const float* X, int64_t ldx, int64_t rows, int64_t K, int64_t kpad,
            void* dst) {
  if (rows * kpad < (int64_t(1) << 16)) return im.pack_rows(im, round, X, ldx, 0, rows, K, kpad, dst);
  parallel_run([&](int tid, int nthreads) {
    int64_t r0, r1;
    static_chunk(rows, tid, nthreads, &r0, &r1);
    im.pack_rows(im, round, X, ldx, r0, r1, K, kpad, dst);
  }, static_cast<int>(std::min<int64_t>(rows, 1024)));
}

// Y = beta * Y + bias (K == 0), written as finish() would with a zero sum.
void no_k(int64_t M, int64_t N, const float* bias, float beta, float* Y, int64_t ldy) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float* y = Y + i * ldy + j;
      float v = beta != 0.0f ? std::fma(beta, *y, 0.0f) : 0.0f;
      *y = bias ? v + bias[j] : v;
    }
}

}  // namespace

namespace bf16_detail {

namespace {
template <typename T>
void pack_rows_as(const Bf16Impl& im, bool round, const float* X, int64_t ldx, int64_t r0, int64_t r1, int64_t K,
                  int64_t kpad, T* dst) {
  const int64_t g = im.group, half = g / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = X + r * ldx;
    T* d = dst + r * kpad;
    for (int64_t k0 = 0; k0 < kpad; k0 += g)
      for (int64_t q = 0; q < g; ++q) {
        const int64_t k = k0 + q;
        float v = k < K ? x[k] : 0.0f;
        if (round) v = round_to_bf16(v);
        const int64_t at = im.deinterleave ? k0 + (q & 1) * half + (q >> 1) : k;
        if constexpr (sizeof(T) == 2) d[at] = fp32_to_bf16(v);
        else d[at] = v;
      }
  }
}
}  // namespace

void pack_rows_generic(const Bf16Impl& im, bool round, const float* X, int64_t ldx, int64_t r0, int64_t r1,
                       int64_t K, int64_t kpad, void* dst) {
  if (im.x_bf16) pack_rows_as(im, round, X, ldx, r0, r1, K, kpad, static_cast<uint16_t*>(dst));
  else pack_rows_as(im, round, X, ldx, r0, r1, K, kpad, static_cast<float*>(dst));
}

void gemm_bf16_with(const Bf16Impl& im, bool round, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx,
                    const uint16_t* W, int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return no_k(M, N, bias, beta, Y, ldy);
  const int64_t g = im.group, xbytes = im.x_bf16 ? 2 : 4;
  // K blocks: a function of K (and the implementation) only, never of M or the threads.
  const int64_t kpad = (K + g - 1) / g * g;
  int64_t kblocks = (K + im.kc_max - 1) / im.kc_max;
  const int64_t kc = ((K + kblocks - 1) / kblocks + g - 1) / g * g;
  kblocks = (K + kc - 1) / kc;
  const int64_t nc = std::max<int64_t>(kColUnit, im.w_block / (2 * kc) / kColUnit * kColUnit);
  // Rows per chunk: at most kChunkBytes of packed X, in chunks of equal size.
  const int64_t max_rows = std::max<int64_t>(kRowUnit, kChunkBytes / (kpad * xbytes));
  const int64_t chunks = (M + max_rows - 1) / max_rows;
  const int64_t chunk = ((M + chunks - 1) / chunks + kRowUnit - 1) / kRowUnit * kRowUnit;

  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t rows = std::min(chunk, M - m0);
    char* xp = static_cast<char*>(t_packed_x.get(rows * kpad * xbytes));
    pack_x(im, round, X + m0 * ldx, ldx, rows, K, kpad, xp);
    // Threads take column ranges; when there are fewer column units than threads, rows are split too.
    const int64_t col_units = (N + kColUnit - 1) / kColUnit, row_units = (rows + kRowUnit - 1) / kRowUnit;
    parallel_run([&](int tid, int nthreads) {
      const int tn = static_cast<int>(std::min<int64_t>(nthreads, col_units));
      const int tm = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(row_units, nthreads / tn)));
      if (tid >= tn * tm) return;
      int64_t u0, u1, v0, v1;
      static_chunk(col_units, tid % tn, tn, &u0, &u1);
      static_chunk(row_units, tid / tn, tm, &v0, &v1);
      const int64_t n0 = u0 * kColUnit, n1 = std::min(N, u1 * kColUnit);
      const int64_t r0 = v0 * kRowUnit, r1 = std::min(rows, v1 * kRowUnit);
      if (n0 >= n1 || r0 >= r1) return;
      bf16_detail::Block b{};
      b.xp = xp + r0 * kpad * xbytes;
      b.kpad = kpad;
      b.rows = r1 - r0;
      b.W = W, b.ldw = ldw;
      b.beta = beta, b.bias = bias;
      b.Y = Y + (m0 + r0) * ldy, b.ldy = ldy;
      // A few rows (decode): W rows are read once, so they go through all K blocks a tile (8 rows,
      // the widest 1-row tile) at a time: long sequential streams. More rows: W blocks of nc
      // columns stay in L2 while the rows pass over them.
      const int64_t cols = b.rows <= kRowUnit ? 8 : nc;
      for (int64_t jc = n0; jc < n1; jc += cols) {
        b.j0 = jc, b.j1 = std::min(n1, jc + cols);
        for (int64_t kb = 0; kb < kblocks; ++kb) {
          b.k0 = kb * kc, b.kc = std::min(kc, K - b.k0);
          b.first = kb == 0, b.last = kb == kblocks - 1;
          im.block(b);
        }
      }
    }, threads_for(rows, N, K, col_units * row_units));
  }
}

}  // namespace bf16_detail

void gemm_bf16(Bf16Mode mode, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const uint16_t* W,
               int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy) {
  bf16_detail::gemm_bf16_with(pick_impl(mode), mode == Bf16Mode::Bf16Dot, M, N, K, X, ldx, W, ldw, bias, beta, Y,
                              ldy);
}

}  // namespace medgym
