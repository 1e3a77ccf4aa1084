// Causal attention twins of cpu/attention.h, flash style in fp32 (SIMT):
//  - forward: a block per (b, h, 64 queries) walks 32-key tiles up to its causal limit with an online
//    softmax (running max m, sum l, output rescaled by e^(m_old - m_new)); saves lse = m + log l.
//  - backward: D_i = dout_i·out_i first; then two kernels that each recompute P = e^(scale q·k - lse):
//    one per (b, h, 32 keys) accumulating dK, dV over the query tiles, one per (b, h, 32 queries)
//    accumulating dQ over the key tiles. No atomics: deterministic.
// Threads: 256 as a 16 x 16 grid (ty, tx); a thread owns rows ty + 16 i and columns tx + 16 j of each
// tile, so shared-memory reads are broadcasts or consecutive (row strides HD + 1, odd).
// Head dims are padded to HD in {32, 64, 128, 256} (zeros); larger head dims are rejected.
#include <cmath>
#include <type_traits>

#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int FQ = 64, FK = 32;  // forward tile: queries x keys
constexpr int BT = 32;           // backward tiles: 32 queries, 32 keys

// Query i (of Tq) attends key j (of Tk) of batch row b.
__device__ __forceinline__ bool attends(int64_t i, int64_t j, int64_t Tq, int64_t Tk, const int32_t* key_mask,
                                        int64_t b) {
  return i < Tq && j < Tk && j <= i + (Tk - Tq) && (key_mask == nullptr || key_mask[b * Tk + j] != 0);
}

// rows x HD tile of view v (rows r0.. of batch b, head h) into S (stride HD + 1), zeros past Tn / hd.
template <int HD>
__device__ __forceinline__ void load_rows(float* S, int rows, const float* data, int64_t sb, int64_t st, int64_t sh,
                                          int64_t b, int64_t h, int64_t r0, int64_t Tn, int64_t hd) {
  for (int e = threadIdx.x; e < rows * HD; e += kThreads) {
    const int r = e / HD, d = e % HD;
    const int64_t t = r0 + r;
    S[r * (HD + 1) + d] = (t < Tn && d < hd) ? data[b * sb + t * st + h * sh + d] : 0.0f;
  }
}

template <int HD>
constexpr size_t forward_smem() {
  return sizeof(float) * (size_t(FQ) * (HD + 1) + 2 * size_t(FK) * (HD + 1) + size_t(FQ) * (FK + 1) + 3 * FQ);
}

template <int HD>
__global__ void __launch_bounds__(kThreads) attn_forward_kernel(AttnDims dims, AttnViewOut out, float* lse, AttnView q,
                                                                AttnView k, AttnView v, const int32_t* key_mask,
                                                                float scale) {
  extern __shared__ float sm[];
  float* Qs = sm;                     // [FQ][HD+1]
  float* Ks = Qs + FQ * (HD + 1);     // [FK][HD+1]
  float* Vs = Ks + FK * (HD + 1);     // [FK][HD+1]
  float* Ss = Vs + FK * (HD + 1);     // [FQ][FK+1]: probabilities of the tile
  float* row_m = Ss + FQ * (FK + 1);  // running max, sum, and this tile's rescale factor per query
  float* row_l = row_m + FQ;
  float* row_a = row_l + FQ;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = int64_t(blockIdx.x) * FQ;
  const int64_t Tq = dims.Tq, Tk = dims.Tk, hd = dims.hd, off = Tk - Tq;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;

  load_rows<HD>(Qs, FQ, q.data, q.sb, q.st, q.sh, b, h, q0, Tq, hd);
  if (threadIdx.x < FQ) row_m[threadIdx.x] = -INFINITY, row_l[threadIdx.x] = 0.0f;
  float o[4][HD / 16] = {};

  const int64_t q_last = min(q0 + FQ, Tq) - 1;
  const int64_t k_end = min(Tk, q_last + off + 1);
  for (int64_t k0 = 0; k0 < k_end; k0 += FK) {
    __syncthreads();  // previous tile fully consumed (and Qs / row stats initialized)
    load_rows<HD>(Ks, FK, k.data, k.sb, k.st, k.sh, b, h, k0, Tk, hd);
    load_rows<HD>(Vs, FK, v.data, v.sb, v.st, v.sh, b, h, k0, Tk, hd);
    __syncthreads();
    // Scores of this thread's 4 x 2 elements.
    float s[4][2] = {};
#pragma unroll 4
    for (int d = 0; d < HD; ++d) {
      float kd[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) kd[j] = Ks[(tx + 16 * j) * (HD + 1) + d];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float qd = Qs[(ty + 16 * i) * (HD + 1) + d];
#pragma unroll
        for (int j = 0; j < 2; ++j) s[i][j] = fmaf(qd, kd[j], s[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int r = ty + 16 * i, c = tx + 16 * j;
        Ss[r * (FK + 1) + c] = attends(q0 + r, k0 + c, Tq, Tk, key_mask, b) ? scale * s[i][j] : -INFINITY;
      }
    __syncthreads();
    // Online softmax: 4 consecutive threads per query row, 8 columns each.
    {
      const int r = threadIdx.x / 4, c0 = (threadIdx.x % 4) * 8;
      float* srow = Ss + r * (FK + 1);
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 8; ++c) mx = fmaxf(mx, srow[c0 + c]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_old = row_m[r], m_new = fmaxf(m_old, mx);
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const float p = m_new == -INFINITY ? 0.0f : expf(srow[c0 + c] - m_new);
        srow[c0 + c] = p;
        sum += p;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      __syncwarp();
      if (threadIdx.x % 4 == 0) {
        const float a = m_new == -INFINITY ? 1.0f : expf(m_old - m_new);
        row_a[r] = a;
        row_l[r] = row_l[r] * a + sum;
        row_m[r] = m_new;
      }
    }
    __syncthreads();
    // o = o * a + P V.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ty + 16 * i;
      const float a = row_a[r];
#pragma unroll
      for (int j = 0; j < HD / 16; ++j) o[i][j] *= a;
      for (int c = 0; c < FK; ++c) {
        const float p = Ss[r * (FK + 1) + c];
#pragma unroll
        for (int j = 0; j < HD / 16; ++j) o[i][j] = fmaf(p, Vs[c * (HD + 1) + tx + 16 * j], o[i][j]);
      }
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    const int64_t t = q0 + r;
    if (t >= Tq) continue;
    const float l = row_l[r], inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* dst = out.data + b * out.sb + t * out.st + h * out.sh;
#pragma unroll
    for (int j = 0; j < HD / 16; ++j) {
      const int d = tx + 16 * j;
      if (d < hd) dst[d] = o[i][j] * inv;
    }
    if (lse && tx == 0) lse[(b * dims.H + h) * Tq + t] = l > 0.0f ? row_m[r] + logf(l) : -INFINITY;
  }
}

// D[b, h, i] = dout_i · out_i (one warp per query row).
__global__ void attn_dot_kernel(AttnDims dims, AttnView dout, AttnView out, float* D) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  const int64_t rows = dims.B * dims.H * dims.Tq;
  if (row >= rows) return;
  const int64_t t = row % dims.Tq, h = (row / dims.Tq) % dims.H, b = row / (dims.Tq * dims.H);
  const float* g = dout.data + b * dout.sb + t * dout.st + h * dout.sh;
  const float* o = out.data + b * out.sb + t * out.st + h * out.sh;
  float s = 0.0f;
  for (int64_t d = threadIdx.x % 32; d < dims.hd; d += 32) s += g[d] * o[d];
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) D[row] = s;
}

template <int HD>
constexpr size_t backward_smem() {
  return sizeof(float) * (4 * size_t(BT) * (HD + 1) + 2 * size_t(BT) * (BT + 1) + 2 * BT);
}

// P (probabilities) and dS = P (dP - D) of one 32 x 32 tile; rows of `R` against rows of `Cq`
// (transposed = true: R are keys, Cq queries; otherwise R are queries, Cq keys). Returns them for
// the thread's 2 x 2 elements (row ty + 16 i, column tx + 16 j).
template <int HD>
__device__ __forceinline__ void tile_p_ds(const float* Rq, const float* Rv, const float* Cq, const float* Cv,
                                          float p[2][2], float ds[2][2], bool transposed, int64_t r0, int64_t c0,
                                          const AttnDims& dims, const int32_t* key_mask, int64_t b, float scale,
                                          const float* lse_s, const float* D_s) {
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  float s[2][2] = {}, dp[2][2] = {};
#pragma unroll 4
  for (int d = 0; d < HD; ++d) {
    float cq[2], cv[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) cq[j] = Cq[(tx + 16 * j) * (HD + 1) + d], cv[j] = Cv[(tx + 16 * j) * (HD + 1) + d];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float rq = Rq[(ty + 16 * i) * (HD + 1) + d], rv = Rv[(ty + 16 * i) * (HD + 1) + d];
#pragma unroll
      for (int j = 0; j < 2; ++j) s[i][j] = fmaf(rq, cq[j], s[i][j]), dp[i][j] = fmaf(rv, cv[j], dp[i][j]);
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int r = ty + 16 * i, c = tx + 16 * j;
      const int qi = transposed ? c : r;  // index of the query within its tile
      const int64_t iq = transposed ? c0 + c : r0 + r, jk = transposed ? r0 + r : c0 + c;
      const float l = lse_s[qi];
      const bool on = attends(iq, jk, dims.Tq, dims.Tk, key_mask, b) && l != -INFINITY;
      p[i][j] = on ? expf(scale * s[i][j] - l) : 0.0f;
      ds[i][j] = p[i][j] * (dp[i][j] - D_s[qi]);
    }
}

// dK, dV of 32 keys: over the query tiles that can see them.
template <int HD>
__global__ void __launch_bounds__(kThreads) attn_dkv_kernel(AttnDims dims, AttnViewOut dk, AttnViewOut dv,
                                                            AttnView dout, const float* lse, const float* D, AttnView q,
                                                            AttnView k, AttnView v, const int32_t* key_mask,
                                                            float scale, bool acc) {
  extern __shared__ float sm[];
  float* Ks = sm;
  float* Vs = Ks + BT * (HD + 1);
  float* Qs = Vs + BT * (HD + 1);
  float* Gs = Qs + BT * (HD + 1);      // dout rows
  float* Ps = Gs + BT * (HD + 1);      // [key][query]
  float* Ds = Ps + BT * (BT + 1);      // dS, [key][query]
  float* lse_s = Ds + BT * (BT + 1);
  float* D_s = lse_s + BT;
  const int64_t b = blockIdx.z, h = blockIdx.y, k0 = int64_t(blockIdx.x) * BT;
  const int64_t Tq = dims.Tq, Tk = dims.Tk, hd = dims.hd, off = Tk - Tq;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  load_rows<HD>(Ks, BT, k.data, k.sb, k.st, k.sh, b, h, k0, Tk, hd);
  load_rows<HD>(Vs, BT, v.data, v.sb, v.st, v.sh, b, h, k0, Tk, hd);
  float gk[2][HD / 16] = {}, gv[2][HD / 16] = {};
  const int64_t first_q = k0 - off > 0 ? (k0 - off) / BT * BT : 0;
  const float* lse_bh = lse + (b * dims.H + h) * Tq;
  const float* D_bh = D + (b * dims.H + h) * Tq;
  for (int64_t q0 = first_q; q0 < Tq; q0 += BT) {
    __syncthreads();
    load_rows<HD>(Qs, BT, q.data, q.sb, q.st, q.sh, b, h, q0, Tq, hd);
    load_rows<HD>(Gs, BT, dout.data, dout.sb, dout.st, dout.sh, b, h, q0, Tq, hd);
    if (threadIdx.x < BT) {
      const int64_t t = q0 + threadIdx.x;
      lse_s[threadIdx.x] = t < Tq ? lse_bh[t] : -INFINITY;
      D_s[threadIdx.x] = t < Tq ? D_bh[t] : 0.0f;
    }
    __syncthreads();
    float p[2][2], ds[2][2];
    tile_p_ds<HD>(Ks, Vs, Qs, Gs, p, ds, true, k0, q0, dims, key_mask, b, scale, lse_s, D_s);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        Ps[(ty + 16 * i) * (BT + 1) + tx + 16 * j] = p[i][j];
        Ds[(ty + 16 * i) * (BT + 1) + tx + 16 * j] = ds[i][j];
      }
    __syncthreads();
    // dV += P^T dout, dK += dS^T q (rows: this block's keys).
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = ty + 16 * i;
      for (int c = 0; c < BT; ++c) {
        const float pv = Ps[r * (BT + 1) + c], dsv = Ds[r * (BT + 1) + c];
#pragma unroll
        for (int j = 0; j < HD / 16; ++j) {
          gv[i][j] = fmaf(pv, Gs[c * (HD + 1) + tx + 16 * j], gv[i][j]);
          gk[i][j] = fmaf(dsv, Qs[c * (HD + 1) + tx + 16 * j], gk[i][j]);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t t = k0 + ty + 16 * i;
    if (t >= Tk) continue;
    float* pk = dk.data + b * dk.sb + t * dk.st + h * dk.sh;
    float* pv = dv.data + b * dv.sb + t * dv.st + h * dv.sh;
#pragma unroll
    for (int j = 0; j < HD / 16; ++j) {
      const int d = tx + 16 * j;
      if (d >= hd) continue;
      const float vk = scale * gk[i][j], vv = gv[i][j];
      pk[d] = acc ? pk[d] + vk : vk;
      pv[d] = acc ? pv[d] + vv : vv;
    }
  }
}

// dQ of 32 queries: over the key tiles they can see.
template <int HD>
__global__ void __launch_bounds__(kThreads) attn_dq_kernel(AttnDims dims, AttnViewOut dq, AttnView dout,
                                                           const float* lse, const float* D, AttnView q, AttnView k,
                                                           AttnView v, const int32_t* key_mask, float scale, bool acc) {
  extern __shared__ float sm[];
  float* Qs = sm;
  float* Gs = Qs + BT * (HD + 1);
  float* Ks = Gs + BT * (HD + 1);
  float* Vs = Ks + BT * (HD + 1);
  float* Ds = Vs + BT * (HD + 1);  // dS, [query][key]
  float* lse_s = Ds + 2 * BT * (BT + 1);
  float* D_s = lse_s + BT;
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = int64_t(blockIdx.x) * BT;
  const int64_t Tq = dims.Tq, Tk = dims.Tk, hd = dims.hd, off = Tk - Tq;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  load_rows<HD>(Qs, BT, q.data, q.sb, q.st, q.sh, b, h, q0, Tq, hd);
  load_rows<HD>(Gs, BT, dout.data, dout.sb, dout.st, dout.sh, b, h, q0, Tq, hd);
  if (threadIdx.x < BT) {
    const int64_t t = q0 + threadIdx.x;
    lse_s[threadIdx.x] = t < Tq ? lse[(b * dims.H + h) * Tq + t] : -INFINITY;
    D_s[threadIdx.x] = t < Tq ? D[(b * dims.H + h) * Tq + t] : 0.0f;
  }
  float gq[2][HD / 16] = {};
  const int64_t q_last = min(q0 + BT, Tq) - 1;
  const int64_t k_end = min(Tk, q_last + off + 1);
  for (int64_t k0 = 0; k0 < k_end; k0 += BT) {
    __syncthreads();
    load_rows<HD>(Ks, BT, k.data, k.sb, k.st, k.sh, b, h, k0, Tk, hd);
    load_rows<HD>(Vs, BT, v.data, v.sb, v.st, v.sh, b, h, k0, Tk, hd);
    __syncthreads();
    float p[2][2], ds[2][2];
    tile_p_ds<HD>(Qs, Gs, Ks, Vs, p, ds, false, q0, k0, dims, key_mask, b, scale, lse_s, D_s);
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) Ds[(ty + 16 * i) * (BT + 1) + tx + 16 * j] = ds[i][j];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = ty + 16 * i;
      for (int c = 0; c < BT; ++c) {
        const float dsv = Ds[r * (BT + 1) + c];
#pragma unroll
        for (int j = 0; j < HD / 16; ++j) gq[i][j] = fmaf(dsv, Ks[c * (HD + 1) + tx + 16 * j], gq[i][j]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t t = q0 + ty + 16 * i;
    if (t >= Tq) continue;
    float* pq = dq.data + b * dq.sb + t * dq.st + h * dq.sh;
#pragma unroll
    for (int j = 0; j < HD / 16; ++j) {
      const int d = tx + 16 * j;
      if (d >= hd) continue;
      const float g = scale * gq[i][j];
      pq[d] = acc ? pq[d] + g : g;
    }
  }
}

template <typename F>
void with_hd(int64_t hd, const char* name, F f) {
  if (hd <= 32) return f(std::integral_constant<int, 32>{});
  if (hd <= 64) return f(std::integral_constant<int, 64>{});
  if (hd <= 128) return f(std::integral_constant<int, 128>{});
  if (hd <= 256) return f(std::integral_constant<int, 256>{});
  throw std::invalid_argument(std::string(name) + ": head dim > 256 is not supported");
}

void check_grid(const AttnDims& d, const char* name) {
  if (d.B > 65535 || d.H > 65535) throw std::invalid_argument(std::string(name) + ": B and H must be <= 65535");
}

}  // namespace

void attention_forward(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                       const int32_t* key_mask, float scale, Stream s) {
  if (dims.B <= 0 || dims.H <= 0 || dims.Tq <= 0 || dims.hd <= 0) return;
  const char* name = "attention_forward kernel";
  check_grid(dims, name);
  with_hd(dims.hd, name, [&](auto hd_c) {
    constexpr int HD = decltype(hd_c)::value;
    auto kernel = attn_forward_kernel<HD>;
    allow_smem(kernel, forward_smem<HD>(), name);
    const dim3 grid(static_cast<unsigned>(ceil_div(dims.Tq, FQ)), static_cast<unsigned>(dims.H),
                    static_cast<unsigned>(dims.B));
    kernel<<<grid, kThreads, forward_smem<HD>(), to_stream(s)>>>(dims, out, lse, q, k, v, key_mask, scale);
  });
  check_launch(name);
}

void attention_backward(const AttnDims& dims, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                        AttnView out, const float* lse, AttnView q, AttnView k, AttnView v, const int32_t* key_mask,
                        float scale, bool accumulate, Stream s) {
  if (dims.B <= 0 || dims.H <= 0 || dims.hd <= 0 || (dims.Tq <= 0 && dims.Tk <= 0)) return;
  const char* name = "attention_backward kernel";
  check_grid(dims, name);
  const cudaStream_t st = to_stream(s);
  const int64_t rows = dims.B * dims.H * dims.Tq;
  Scratch D(size_t(std::max<int64_t>(rows, 1)) * sizeof(float), st);
  if (rows > 0) {
    attn_dot_kernel<<<static_cast<unsigned>(ceil_div(rows, 8)), 256, 0, st>>>(dims, dout, out, D.as<float>());
    check_launch(name);
  }
  with_hd(dims.hd, name, [&](auto hd_c) {
    constexpr int HD = decltype(hd_c)::value;
    if (dims.Tk > 0) {
      auto kernel = attn_dkv_kernel<HD>;
      allow_smem(kernel, backward_smem<HD>(), name);
      const dim3 grid(static_cast<unsigned>(ceil_div(dims.Tk, BT)), static_cast<unsigned>(dims.H),
                      static_cast<unsigned>(dims.B));
      kernel<<<grid, kThreads, backward_smem<HD>(), st>>>(dims, dk, dv, dout, lse, D.as<float>(), q, k, v, key_mask,
                                                          scale, accumulate);
      check_launch(name);
    }
    if (dims.Tq > 0) {
      auto kernel = attn_dq_kernel<HD>;
      allow_smem(kernel, backward_smem<HD>(), name);
      const dim3 grid(static_cast<unsigned>(ceil_div(dims.Tq, BT)), static_cast<unsigned>(dims.H),
                      static_cast<unsigned>(dims.B));
      kernel<<<grid, kThreads, backward_smem<HD>(), st>>>(dims, dq, dout, lse, D.as<float>(), q, k, v, key_mask, scale,
                                                          accumulate);
      check_launch(name);
    }
  });
}

void attention_forward_qkv(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B, int64_t T,
                           int64_t C, int64_t H, Stream s) {
  const int64_t hd = C / H;
  const AttnDims dims{B, H, T, T, hd};
  const AttnView q{qkv, T * 3 * C, 3 * C, hd}, k{qkv + C, T * 3 * C, 3 * C, hd}, v{qkv + 2 * C, T * 3 * C, 3 * C, hd};
  attention_forward(dims, AttnViewOut{out, T * C, C, hd}, lse, q, k, v, key_mask, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))), s);
}

void attention_backward_qkv(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                            const int32_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t H, bool accumulate,
                            Stream s) {
  const int64_t hd = C / H;
  const AttnDims dims{B, H, T, T, hd};
  const AttnView q{qkv, T * 3 * C, 3 * C, hd}, k{qkv + C, T * 3 * C, 3 * C, hd}, v{qkv + 2 * C, T * 3 * C, 3 * C, hd};
  const AttnViewOut dq{dqkv, T * 3 * C, 3 * C, hd}, dk{dqkv + C, T * 3 * C, 3 * C, hd},
      dv{dqkv + 2 * C, T * 3 * C, 3 * C, hd};
  attention_backward(dims, dq, dk, dv, AttnView{dout, T * C, C, hd}, AttnView{out, T * C, C, hd}, lse, q, k, v,
                     key_mask, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd))), accumulate, s);
}

}  // namespace medgym::cuda
