#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

constexpr int64_t QB = 32;  // queries per block: the width of the score tiles St [keys, QB]
constexpr float kInf = std::numeric_limits<float>::infinity();

// Small strided GEMM used for every product of the attention:
//   C[i*ldc + n] (+)= Σ_k A[i*ai + k*ak] * B[k*ldb + n]   for i < M, n < N, k < K.
// A may be read transposed (any strides); rows of B and C are contiguous in n.
using GemmFn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t ai, int64_t ak, const float* B,
                        int64_t ldb, float* C, int64_t ldc, bool acc);

void gemm_scalar(int64_t M, int64_t N, int64_t K, const float* A, int64_t ai, int64_t ak, const float* B,
                 int64_t ldb, float* C, int64_t ldc, bool acc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (!acc) std::fill(c, c + N, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float a = A[i * ai + k * ak];
      const float* b = B + k * ldb;
      for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
    }
  }
}

// Column-wise softmax statistics of a score tile St [nk, QB] (in place): mx[r] = max_j St[j][r]
// (+inf where the column is all -inf, so that every exp below is 0), St = exp(St - mx), sum[r] = Σ_j St.
void colsoftmax_scalar(float* St, int64_t nk, float* mx, float* sum) {
  for (int64_t r = 0; r < QB; ++r) mx[r] = -kInf, sum[r] = 0.0f;
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t r = 0; r < QB; ++r) mx[r] = std::max(mx[r], St[j * QB + r]);
  for (int64_t r = 0; r < QB; ++r)
    if (mx[r] == -kInf) mx[r] = kInf;
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t r = 0; r < QB; ++r) sum[r] += (St[j * QB + r] = std::exp(St[j * QB + r] - mx[r]));
}

// Backward tile: P = exp(St - lse) into St; dS = scale * P * (dP - D) into dP.
void bwd_tile_scalar(float* St, float* dP, int64_t nk, const float* lse, const float* D, float scale) {
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t r = 0; r < QB; ++r) {
      float p = std::exp(St[j * QB + r] - lse[r]);
      St[j * QB + r] = p;
      dP[j * QB + r] = scale * p * (dP[j * QB + r] - D[r]);
    }
}

#if MEDGYM_X86
// ---- AVX2: 6 rows x 16 columns register tile ----
MEDGYM_AVX2 static inline __m256i tail_mask8(int64_t n) {
  static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tbl + 8 - std::min<int64_t>(std::max<int64_t>(n, 0), 8)));
}

template <int MR, int NC>
MEDGYM_AVX2 static inline void mk_avx2(int64_t K, const float* A, int64_t ai, int64_t ak, const float* B, int64_t ldb,
                                       float* C, int64_t ldc, __m256i m0, __m256i m1, bool acc) {
  __m256 c0[MR], c1[MR];  // 1-D arrays + forced unrolling keep the accumulators in registers
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) c0[r] = _mm256_setzero_ps(), c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const __m256 b0 = _mm256_maskload_ps(b, m0);
    const __m256 b1 = NC == 2 ? _mm256_maskload_ps(b + 8, m1) : b0;
    const float* a = A + k * ak;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * ai);
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      if (NC == 2) c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = C + r * ldc;
    __m256 x0 = c0[r], x1 = c1[r];
    if (acc) x0 = _mm256_add_ps(x0, _mm256_maskload_ps(cr, m0));
    _mm256_maskstore_ps(cr, m0, x0);
    if (NC == 2) {
      if (acc) x1 = _mm256_add_ps(x1, _mm256_maskload_ps(cr + 8, m1));
      _mm256_maskstore_ps(cr + 8, m1, x1);
    }
  }
}

template <int NC>
MEDGYM_AVX2 static inline void rows_avx2(int64_t M, int64_t K, const float* A, int64_t ai, int64_t ak,
                                         const float* B, int64_t ldb, float* C, int64_t ldc, __m256i m0,
                                         __m256i m1, bool acc) {
  int64_t i = 0;
  for (; i + 6 <= M; i += 6) mk_avx2<6, NC>(K, A + i * ai, ai, ak, B, ldb, C + i * ldc, ldc, m0, m1, acc);
  const float* a = A + i * ai;
  float* c = C + i * ldc;
  switch (M - i) {
    case 5: mk_avx2<5, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 4: mk_avx2<4, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 3: mk_avx2<3, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 2: mk_avx2<2, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 1: mk_avx2<1, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    default: break;
  }
}

MEDGYM_AVX2 void gemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t ai, int64_t ak, const float* B,
                           int64_t ldb, float* C, int64_t ldc, bool acc) {
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int64_t nr = std::min<int64_t>(16, N - n0);
    const __m256i m0 = tail_mask8(nr), m1 = tail_mask8(nr - 8);
    if (nr > 8) rows_avx2<2>(M, K, A, ai, ak, B + n0, ldb, C + n0, ldc, m0, m1, acc);
    else rows_avx2<1>(M, K, A, ai, ak, B + n0, ldb, C + n0, ldc, m0, m1, acc);
  }
}

MEDGYM_AVX2 void colsoftmax_avx2(float* St, int64_t nk, float* mx, float* sum) {
  constexpr int V = QB / 8;
  __m256 m[V], s[V];
  for (int q = 0; q < V; ++q) m[q] = _mm256_set1_ps(-kInf), s[q] = _mm256_setzero_ps();
  for (int64_t j = 0; j < nk; ++j)
    for (int q = 0; q < V; ++q) m[q] = _mm256_max_ps(m[q], _mm256_loadu_ps(St + j * QB + 8 * q));
  const __m256 ninf = _mm256_set1_ps(-kInf), pinf = _mm256_set1_ps(kInf);
  for (int q = 0; q < V; ++q) m[q] = _mm256_blendv_ps(m[q], pinf, _mm256_cmp_ps(m[q], ninf, _CMP_EQ_OQ));
  for (int64_t j = 0; j < nk; ++j)
    for (int q = 0; q < V; ++q) {
      __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(St + j * QB + 8 * q), m[q]));
      _mm256_storeu_ps(St + j * QB + 8 * q, e);
      s[q] = _mm256_add_ps(s[q], e);
    }
  for (int q = 0; q < V; ++q) _mm256_storeu_ps(mx + 8 * q, m[q]), _mm256_storeu_ps(sum + 8 * q, s[q]);
}

MEDGYM_AVX2 void bwd_tile_avx2(float* St, float* dP, int64_t nk, const float* lse, const float* D, float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  for (int64_t j = 0; j < nk; ++j)
    for (int q = 0; q < QB / 8; ++q) {
      float* s = St + j * QB + 8 * q;
      float* d = dP + j * QB + 8 * q;
      __m256 p = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(lse + 8 * q)));
      _mm256_storeu_ps(s, p);
      __m256 g = _mm256_sub_ps(_mm256_loadu_ps(d), _mm256_loadu_ps(D + 8 * q));
      _mm256_storeu_ps(d, _mm256_mul_ps(_mm256_mul_ps(sc, p), g));
    }
}

// ---- AVX-512: 6 rows x 32 columns register tile ----
// GCC 12 warns spuriously about _mm512_undefined_ps inside the AVX-512 intrinsics headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int MR, int NC>
MEDGYM_AVX512 static inline void mk_avx512(int64_t K, const float* A, int64_t ai, int64_t ak, const float* B,
                                           int64_t ldb, float* C, int64_t ldc, __mmask16 m0, __mmask16 m1, bool acc) {
  // Separate 1-D accumulator arrays with forced unrolling: GCC then keeps them in registers (a 2-D
  // array made it spill every accumulator to the stack on each k step).
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) c0[r] = _mm512_setzero_ps(), c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
    const __m512 b1 = NC == 2 ? _mm512_maskz_loadu_ps(m1, b + 16) : b0;
    const float* a = A + k * ak;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * ai]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      if (NC == 2) c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = C + r * ldc;
    __m512 x0 = c0[r], x1 = c1[r];
    if (acc) x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, cr));
    _mm512_mask_storeu_ps(cr, m0, x0);
    if (NC == 2) {
      if (acc) x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, cr + 16));
      _mm512_mask_storeu_ps(cr + 16, m1, x1);
    }
  }
}

template <int NC>
MEDGYM_AVX512 static inline void rows_avx512(int64_t M, int64_t K, const float* A, int64_t ai, int64_t ak,
                                             const float* B, int64_t ldb, float* C, int64_t ldc, __mmask16 m0,
                                             __mmask16 m1, bool acc) {
  int64_t i = 0;
  for (; i + 6 <= M; i += 6) mk_avx512<6, NC>(K, A + i * ai, ai, ak, B, ldb, C + i * ldc, ldc, m0, m1, acc);
  const float* a = A + i * ai;
  float* c = C + i * ldc;
  switch (M - i) {
    case 5: mk_avx512<5, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 4: mk_avx512<4, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 3: mk_avx512<3, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 2: mk_avx512<2, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    case 1: mk_avx512<1, NC>(K, a, ai, ak, B, ldb, c, ldc, m0, m1, acc); break;
    default: break;
  }
}

inline __mmask16 tail_mask16(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

MEDGYM_AVX512 void gemm_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t ai, int64_t ak,
                               const float* B, int64_t ldb, float* C, int64_t ldc, bool acc) {
  for (int64_t n0 = 0; n0 < N; n0 += 32) {
    const int64_t nr = std::min<int64_t>(32, N - n0);
    const __mmask16 m0 = tail_mask16(nr), m1 = tail_mask16(nr - 16);
    if (nr > 16) rows_avx512<2>(M, K, A, ai, ak, B + n0, ldb, C + n0, ldc, m0, m1, acc);
    else rows_avx512<1>(M, K, A, ai, ak, B + n0, ldb, C + n0, ldc, m0, m1, acc);
  }
}

MEDGYM_AVX512 void colsoftmax_avx512(float* St, int64_t nk, float* mx, float* sum) {
  __m512 m0 = _mm512_set1_ps(-kInf), m1 = m0, s0 = _mm512_setzero_ps(), s1 = s0;
  for (int64_t j = 0; j < nk; ++j) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(St + j * QB));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(St + j * QB + 16));
  }
  const __m512 ninf = _mm512_set1_ps(-kInf), pinf = _mm512_set1_ps(kInf);
  m0 = _mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(m0, ninf, _CMP_EQ_OQ), pinf);
  m1 = _mm512_mask_mov_ps(m1, _mm512_cmp_ps_mask(m1, ninf, _CMP_EQ_OQ), pinf);
  for (int64_t j = 0; j < nk; ++j) {
    __m512 e0 = simd::exp512(_mm512_sub_ps(_mm512_loadu_ps(St + j * QB), m0));
    __m512 e1 = simd::exp512(_mm512_sub_ps(_mm512_loadu_ps(St + j * QB + 16), m1));
    _mm512_storeu_ps(St + j * QB, e0);
    _mm512_storeu_ps(St + j * QB + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  _mm512_storeu_ps(mx, m0), _mm512_storeu_ps(mx + 16, m1);
  _mm512_storeu_ps(sum, s0), _mm512_storeu_ps(sum + 16, s1);
}

MEDGYM_AVX512 void bwd_tile_avx512(float* St, float* dP, int64_t nk, const float* lse, const float* D, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  const __m512 l0 = _mm512_loadu_ps(lse), l1 = _mm512_loadu_ps(lse + 16);
  const __m512 d0 = _mm512_loadu_ps(D), d1 = _mm512_loadu_ps(D + 16);
  for (int64_t j = 0; j < nk; ++j) {
    float* s = St + j * QB;
    float* d = dP + j * QB;
    __m512 p0 = simd::exp512(_mm512_sub_ps(_mm512_loadu_ps(s), l0));
    __m512 p1 = simd::exp512(_mm512_sub_ps(_mm512_loadu_ps(s + 16), l1));
    _mm512_storeu_ps(s, p0), _mm512_storeu_ps(s + 16, p1);
    _mm512_storeu_ps(d, _mm512_mul_ps(_mm512_mul_ps(sc, p0), _mm512_sub_ps(_mm512_loadu_ps(d), d0)));
    _mm512_storeu_ps(d + 16, _mm512_mul_ps(_mm512_mul_ps(sc, p1), _mm512_sub_ps(_mm512_loadu_ps(d + 16), d1)));
  }
}
#pragma GCC diagnostic pop
#endif

struct Ops {
  GemmFn gemm;
  void (*colsoftmax)(float*, int64_t, float*, float*);
  void (*bwd_tile)(float*, float*, int64_t, const float*, const float*, float);
};

Ops pick_ops() {
#if MEDGYM_X86
  SimdLevel l = simd_level();
  if (l >= SimdLevel::Avx512) return {gemm_avx512, colsoftmax_avx512, bwd_tile_avx512};
  if (l >= SimdLevel::Avx2Fma) return {gemm_avx2, colsoftmax_avx2, bwd_tile_avx2};
#endif
  return {gemm_scalar, colsoftmax_scalar, bwd_tile_scalar};
}

inline const float* at(const AttnView& v, int64_t b, int64_t t, int64_t h) { return v.data + b * v.sb + t * v.st + h * v.sh; }
inline float* at(const AttnViewOut& v, int64_t b, int64_t t, int64_t h) { return v.data + b * v.sb + t * v.st + h * v.sh; }

// Qt [hd, QB] = s * q rows q0..q0+R of head (b, h), transposed; columns >= R are zero.
void load_transposed(float* Qt, const float* src, int64_t st, int64_t R, int64_t hd, float s) {
  std::fill(Qt, Qt + hd * QB, 0.0f);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t d = 0; d < hd; ++d) Qt[d * QB + r] = s * src[r * st + d];
}

// Sets to -inf the scores a query may not see: masked keys (whole rows) and keys after the query.
void mask_tile(float* St, int64_t nk, const int32_t* mask_b, int64_t q0, int64_t R, int64_t off) {
  if (mask_b)
    for (int64_t j = 0; j < nk; ++j)
      if (mask_b[j] == 0) std::fill(St + j * QB, St + (j + 1) * QB, -kInf);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = q0 + r + off + 1; j < nk; ++j) St[j * QB + r] = -kInf;
}

}  // namespace

void attention_forward(const AttnDims& dm, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                       const int32_t* key_mask, float scale) {
  const int64_t B = dm.B, H = dm.H, Tq = dm.Tq, Tk = dm.Tk, hd = dm.hd, off = Tk - Tq;
  if (B <= 0 || H <= 0 || Tq <= 0 || hd <= 0) return;
  const Ops ops = pick_ops();
  const int64_t nqb = (Tq + QB - 1) / QB, items = B * H * nqb;
  const int max_threads = static_cast<int>(std::min<int64_t>(items, 1 << 20));
  parallel_run([&](int tid, int nthreads) {
    int64_t i0, i1;
    static_chunk(items, tid, nthreads, &i0, &i1);
    if (i0 >= i1) return;
    std::vector<float> Qt(hd * QB), St(Tk * QB), mx(QB), sum(QB);
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / (H * nqb), h = (it / nqb) % H, q0 = (it % nqb) * QB;
      const int64_t R = std::min(QB, Tq - q0), nk = q0 + R + off;
      load_transposed(Qt.data(), at(q, b, q0, h), q.st, R, hd, scale);
      ops.gemm(nk, QB, hd, at(k, b, 0, h), k.st, 1, Qt.data(), QB, St.data(), QB, false);
      mask_tile(St.data(), nk, key_mask ? key_mask + b * Tk : nullptr, q0, R, off);
      ops.colsoftmax(St.data(), nk, mx.data(), sum.data());
      float* o = at(out, b, q0, h);
      ops.gemm(R, hd, nk, St.data(), 1, QB, at(v, b, 0, h), v.st, o, out.st, false);
      for (int64_t r = 0; r < R; ++r) {
        const bool any = sum[r] > 0.0f;
        const float inv = any ? 1.0f / sum[r] : 0.0f;
        for (int64_t d = 0; d < hd; ++d) o[r * out.st + d] *= inv;
        if (lse) lse[(b * H + h) * Tq + q0 + r] = any ? mx[r] + std::log(sum[r]) : -kInf;
      }
    }
  }, max_threads);
}

void attention_backward(const AttnDims& dm, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                        AttnView out, const float* lse, AttnView q, AttnView k, AttnView v,
                        const int32_t* key_mask, float scale, bool accumulate) {
  const int64_t B = dm.B, H = dm.H, Tq = dm.Tq, Tk = dm.Tk, hd = dm.hd, off = Tk - Tq;
  if (B <= 0 || H <= 0 || Tq <= 0 || hd <= 0) return;
  const Ops ops = pick_ops();
  const int64_t pairs = B * H;
  const int max_threads = static_cast<int>(std::min<int64_t>(pairs, 1 << 20));
  parallel_run([&](int tid, int nthreads) {
    int64_t i0, i1;
    static_chunk(pairs, tid, nthreads, &i0, &i1);
    if (i0 >= i1) return;
    std::vector<float> Qt(hd * QB), dOt(hd * QB), St(Tk * QB), dP(Tk * QB), lse_e(QB), D(QB);
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / H, h = it % H;
      if (!accumulate)
        for (int64_t j = 0; j < Tk; ++j) {
          std::fill(at(dk, b, j, h), at(dk, b, j, h) + hd, 0.0f);
          std::fill(at(dv, b, j, h), at(dv, b, j, h) + hd, 0.0f);
        }
      for (int64_t q0 = 0; q0 < Tq; q0 += QB) {
        const int64_t R = std::min(QB, Tq - q0), nk = q0 + R + off;
        const float* qb = at(q, b, q0, h);
        const float* gb = at(dout, b, q0, h);
        const float* ob = at(out, b, q0, h);
        load_transposed(Qt.data(), qb, q.st, R, hd, scale);
        ops.gemm(nk, QB, hd, at(k, b, 0, h), k.st, 1, Qt.data(), QB, St.data(), QB, false);
        mask_tile(St.data(), nk, key_mask ? key_mask + b * Tk : nullptr, q0, R, off);
        load_transposed(dOt.data(), gb, dout.st, R, hd, 1.0f);
        ops.gemm(nk, QB, hd, at(v, b, 0, h), v.st, 1, dOt.data(), QB, dP.data(), QB, false);
        for (int64_t r = 0; r < QB; ++r) {
          float l = r < R ? lse[(b * H + h) * Tq + q0 + r] : kInf;
          lse_e[r] = (l == -kInf) ? kInf : l;  // no visible key: P = 0 for the whole column
          float s = 0.0f;
          if (r < R)
            for (int64_t d = 0; d < hd; ++d) s += gb[r * dout.st + d] * ob[r * out.st + d];
          D[r] = s;
        }
        ops.bwd_tile(St.data(), dP.data(), nk, lse_e.data(), D.data(), scale);
        ops.gemm(R, hd, nk, dP.data(), 1, QB, at(k, b, 0, h), k.st, at(dq, b, q0, h), dq.st, accumulate);
        ops.gemm(nk, hd, R, dP.data(), QB, 1, qb, q.st, at(dk, b, 0, h), dk.st, true);
        ops.gemm(nk, hd, R, St.data(), QB, 1, gb, dout.st, at(dv, b, 0, h), dv.st, true);
      }
    }
  }, max_threads);
}

namespace {
AttnDims qkv_dims(int64_t B, int64_t T, int64_t C, int64_t H) { return {B, H, T, T, C / H}; }

using ForwardFn = decltype(&attention_forward);
using BackwardFn = decltype(&attention_backward);

// The qkv views of the GPT-2 layout, shared by the optimized and the reference entry points.
void forward_qkv(ForwardFn fwd, float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B,
                 int64_t T, int64_t C, int64_t H) {
  const int64_t hd = C / H;
  AttnView q{qkv, T * 3 * C, 3 * C, hd}, k{qkv + C, T * 3 * C, 3 * C, hd}, v{qkv + 2 * C, T * 3 * C, 3 * C, hd};
  fwd(qkv_dims(B, T, C, H), {out, T * C, C, hd}, lse, q, k, v, key_mask,
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))));
}

void backward_qkv(BackwardFn bwd, float* dqkv, const float* dout, const float* qkv, const float* out,
                  const float* lse, const int32_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t H,
                  bool accumulate) {
  const int64_t hd = C / H, s3 = 3 * C;
  AttnView q{qkv, T * s3, s3, hd}, k{qkv + C, T * s3, s3, hd}, v{qkv + 2 * C, T * s3, s3, hd};
  AttnViewOut dq{dqkv, T * s3, s3, hd}, dk{dqkv + C, T * s3, s3, hd}, dv{dqkv + 2 * C, T * s3, s3, hd};
  bwd(qkv_dims(B, T, C, H), dq, dk, dv, {dout, T * C, C, hd}, {out, T * C, C, hd}, lse, q, k, v, key_mask,
      static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))), accumulate);
}
}  // namespace

void attention_forward_qkv(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B,
                           int64_t T, int64_t C, int64_t H) {
  forward_qkv(attention_forward, out, lse, qkv, key_mask, B, T, C, H);
}

void attention_backward_qkv(float* dqkv, const float* dout, const float* qkv, const float* out,
                            const float* lse, const int32_t* key_mask, int64_t B, int64_t T, int64_t C,
                            int64_t H, bool accumulate) {
  backward_qkv(attention_backward, dqkv, dout, qkv, out, lse, key_mask, B, T, C, H, accumulate);
}

void attention_forward_qkv_ref(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B,
                               int64_t T, int64_t C, int64_t H) {
  forward_qkv(attention_forward_ref, out, lse, qkv, key_mask, B, T, C, H);
}

void attention_backward_qkv_ref(float* dqkv, const float* dout, const float* qkv, const float* out,
                                const float* lse, const int32_t* key_mask, int64_t B, int64_t T, int64_t C,
                                int64_t H, bool accumulate) {
  backward_qkv(attention_backward_ref, dqkv, dout, qkv, out, lse, key_mask, B, T, C, H, accumulate);
}

// ---- references ----

namespace {
// Probabilities of query i of head (b, h) in double; returns false when no key is visible.
bool ref_probs(const AttnDims& dm, const AttnView& q, const AttnView& k, const int32_t* key_mask, float scale,
               int64_t b, int64_t h, int64_t i, std::vector<double>& p, double* lse) {
  const int64_t last = i + dm.Tk - dm.Tq;
  double mx = -std::numeric_limits<double>::infinity();
  const float* qi = at(q, b, i, h);
  for (int64_t j = 0; j <= last; ++j) {
    if (key_mask && key_mask[b * dm.Tk + j] == 0) {
      p[j] = -std::numeric_limits<double>::infinity();
      continue;
    }
    const float* kj = at(k, b, j, h);
    double s = 0;
    for (int64_t d = 0; d < dm.hd; ++d) s += double(qi[d]) * kj[d];
    p[j] = s * scale;
    mx = std::max(mx, p[j]);
  }
  if (std::isinf(mx)) {
    std::fill(p.begin(), p.begin() + last + 1, 0.0);
    *lse = -std::numeric_limits<double>::infinity();
    return false;
  }
  double sum = 0;
  for (int64_t j = 0; j <= last; ++j) sum += (p[j] = std::exp(p[j] - mx));
  for (int64_t j = 0; j <= last; ++j) p[j] /= sum;
  *lse = mx + std::log(sum);
  return true;
}
}  // namespace

void attention_forward_ref(const AttnDims& dm, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                           const int32_t* key_mask, float scale) {
  std::vector<double> p(std::max<int64_t>(dm.Tk, 1)), o(dm.hd);
  for (int64_t b = 0; b < dm.B; ++b)
    for (int64_t h = 0; h < dm.H; ++h)
      for (int64_t i = 0; i < dm.Tq; ++i) {
        double l;
        bool any = ref_probs(dm, q, k, key_mask, scale, b, h, i, p, &l);
        std::fill(o.begin(), o.end(), 0.0);
        if (any)
          for (int64_t j = 0; j <= i + dm.Tk - dm.Tq; ++j)
            for (int64_t d = 0; d < dm.hd; ++d) o[d] += p[j] * at(v, b, j, h)[d];
        for (int64_t d = 0; d < dm.hd; ++d) at(out, b, i, h)[d] = static_cast<float>(o[d]);
        if (lse) lse[(b * dm.H + h) * dm.Tq + i] = static_cast<float>(l);
      }
}

void attention_backward_ref(const AttnDims& dm, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                            AttnView, const float*, AttnView q, AttnView k, AttnView v, const int32_t* key_mask,
                            float scale, bool accumulate) {
  const int64_t hd = dm.hd;
  std::vector<double> p(std::max<int64_t>(dm.Tk, 1)), dp(std::max<int64_t>(dm.Tk, 1));
  std::vector<double> gq(hd), gk(dm.Tk * hd), gv(dm.Tk * hd);
  for (int64_t b = 0; b < dm.B; ++b)
    for (int64_t h = 0; h < dm.H; ++h) {
      std::fill(gk.begin(), gk.end(), 0.0);
      std::fill(gv.begin(), gv.end(), 0.0);
      for (int64_t i = 0; i < dm.Tq; ++i) {
        double l;
        const int64_t last = i + dm.Tk - dm.Tq;
        bool any = ref_probs(dm, q, k, key_mask, scale, b, h, i, p, &l);
        std::fill(gq.begin(), gq.end(), 0.0);
        const float* g = at(dout, b, i, h);
        if (any) {
          double D = 0;  // dout · out, with out recomputed in double
          for (int64_t j = 0; j <= last; ++j) {
            double s = 0;
            for (int64_t d = 0; d < hd; ++d) s += double(g[d]) * at(v, b, j, h)[d];
            dp[j] = s;
            D += p[j] * s;
          }
          for (int64_t j = 0; j <= last; ++j) {
            double ds = p[j] * (dp[j] - D) * scale;
            for (int64_t d = 0; d < hd; ++d) {
              gq[d] += ds * at(k, b, j, h)[d];
              gk[j * hd + d] += ds * at(q, b, i, h)[d];
              gv[j * hd + d] += p[j] * g[d];
            }
          }
        }
        float* o = at(dq, b, i, h);
        for (int64_t d = 0; d < hd; ++d) o[d] = static_cast<float>((accumulate ? o[d] : 0.0) + gq[d]);
      }
      for (int64_t j = 0; j < dm.Tk; ++j) {
        float* ok = at(dk, b, j, h);
        float* ov = at(dv, b, j, h);
        for (int64_t d = 0; d < hd; ++d) {
          ok[d] = static_cast<float>((accumulate ? ok[d] : 0.0) + gk[j * hd + d]);
          ov[d] = static_cast<float>((accumulate ? ov[d] : 0.0) + gv[j * hd + d]);
        }
      }
    }
}

}  // namespace medgym
