// Decode-step attention over a KV cache (cpu/attention_decode.h), batched over sequences with their
// own cache lengths, split over the keys (flash-decoding): a block per (b, h, chunk of 256 keys)
// computes, for each of the Tq queries, the chunk's max m, Σ e^(s - m) and Σ e^(s - m) v; a second
// kernel merges the chunks of each query in chunk order. Scores: one warp per key (lanes over the
// head dim, coalesced); the weighted sum of V: one thread per head-dim column.
#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int kChunk = 256;
constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) decode_partial_kernel(AttnDims dims, AttnView q, AttnView k, AttnView v,
                                                                  const int32_t* kv_len, const int32_t* kv_slot,
                                                                  float scale, int nsplit,
                                                                  float* pm, float* pl, float* po) {
  extern __shared__ float sm[];
  float* qs = sm;               // [hd]
  float* sc = qs + dims.hd;     // [kChunk] scores, then probabilities
  __shared__ float red[32];
  const int64_t bh = blockIdx.x, b = bh / dims.H, h = bh % dims.H, split = blockIdx.y;
  const int64_t Tq = dims.Tq, hd = dims.hd;
  const int64_t len = kv_len ? kv_len[b] : dims.Tk;
  const int64_t kb = kv_slot ? kv_slot[b] : b;  // the cache slot of sequence b
  const int64_t j0 = split * kChunk;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t i = 0; i < Tq; ++i) {
    const int64_t kend = len - Tq + i + 1;  // query i sees keys [0, kend)
    const int64_t n = min(int64_t(kChunk), kend - j0);
    const int64_t rid = (bh * Tq + i) * nsplit + split;
    if (n <= 0) {  // nothing of this chunk is visible to query i
      for (int64_t d = threadIdx.x; d < hd; d += kThreads) po[rid * hd + d] = 0.0f;
      if (threadIdx.x == 0) pm[rid] = -INFINITY, pl[rid] = 0.0f;
      continue;
    }
    __syncthreads();  // the previous query's qs / sc are no longer read
    const float* qrow = q.data + b * q.sb + i * q.st + h * q.sh;
    for (int64_t d = threadIdx.x; d < hd; d += kThreads) qs[d] = qrow[d];
    __syncthreads();
    for (int64_t jj = warp; jj < n; jj += kThreads / 32) {
      const float* krow = k.data + kb * k.sb + (j0 + jj) * k.st + h * k.sh;
      float dot = 0.0f;
      for (int64_t d = lane; d < hd; d += 32) dot += qs[d] * krow[d];
      dot = warp_sum(dot);
      if (lane == 0) sc[jj] = scale * dot;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int64_t jj = threadIdx.x; jj < n; jj += kThreads) mx = fmaxf(mx, sc[jj]);
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int64_t jj = threadIdx.x; jj < n; jj += kThreads) {
      const float p = expf(sc[jj] - mx);
      sc[jj] = p;
      sum += p;
    }
    sum = block_sum(sum, red);  // its barriers also publish the probabilities in sc
    for (int64_t d = threadIdx.x; d < hd; d += kThreads) {
      const float* vcol = v.data + kb * v.sb + j0 * v.st + h * v.sh + d;
      float o = 0.0f;
      for (int64_t jj = 0; jj < n; ++jj) o = fmaf(sc[jj], vcol[jj * v.st], o);
      po[rid * hd + d] = o;
    }
    if (threadIdx.x == 0) pm[rid] = mx, pl[rid] = sum;
  }
}

__global__ void __launch_bounds__(kThreads) decode_combine_kernel(AttnDims dims, AttnViewOut out, float* lse,
                                                                  int nsplit, const float* pm, const float* pl,
                                                                  const float* po) {
  const int64_t rid = blockIdx.x;  // (b * H + h) * Tq + i
  const int64_t i = rid % dims.Tq, h = (rid / dims.Tq) % dims.H, b = rid / (dims.Tq * dims.H);
  const float* m = pm + rid * nsplit;
  const float* l = pl + rid * nsplit;
  float M = -INFINITY;
  for (int s = 0; s < nsplit; ++s) M = fmaxf(M, m[s]);
  float L = 0.0f;
  for (int s = 0; s < nsplit; ++s)
    if (l[s] > 0.0f) L += l[s] * expf(m[s] - M);
  const float inv = L > 0.0f ? 1.0f / L : 0.0f;
  float* dst = out.data + b * out.sb + i * out.st + h * out.sh;
  for (int64_t d = threadIdx.x; d < dims.hd; d += kThreads) {
    float o = 0.0f;
    for (int s = 0; s < nsplit; ++s)
      if (l[s] > 0.0f) o += po[(rid * nsplit + s) * dims.hd + d] * expf(m[s] - M);
    dst[d] = o * inv;
  }
  if (lse && threadIdx.x == 0) lse[rid] = L > 0.0f ? M + logf(L) : -INFINITY;
}

}  // namespace

void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, float scale, Stream s) {
  attention_decode(dims, out, lse, q, k, v, kv_len, nullptr, scale, s);
}

void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, const int32_t* kv_slot, float scale, Stream s) {
  if (dims.B <= 0 || dims.H <= 0 || dims.Tq <= 0 || dims.hd <= 0 || dims.Tk <= 0) return;
  const char* name = "attention_decode kernel";
  const cudaStream_t st = to_stream(s);
  const int64_t nsplit = ceil_div(dims.Tk, kChunk), rows = dims.B * dims.H * dims.Tq;
  if (nsplit > 65535 || dims.B * dims.H > 0x7fffffff || rows > 0x7fffffff)
    throw std::invalid_argument("attention_decode: cache or batch too large");
  Scratch part(size_t(rows) * nsplit * (2 + dims.hd) * sizeof(float), st);
  float* pm = part.as<float>();
  float* pl = pm + rows * nsplit;
  float* po = pl + rows * nsplit;
  const size_t smem = size_t(dims.hd + kChunk) * sizeof(float);
  allow_smem(decode_partial_kernel, smem, name);
  decode_partial_kernel<<<dim3(static_cast<unsigned>(dims.B * dims.H), static_cast<unsigned>(nsplit)), kThreads, smem,
                          st>>>(dims, q, k, v, kv_len, kv_slot, scale, static_cast<int>(nsplit), pm, pl, po);
  check_launch(name);
  decode_combine_kernel<<<static_cast<unsigned>(rows), kThreads, 0, st>>>(dims, out, lse, static_cast<int>(nsplit), pm,
                                                                          pl, po);
  check_launch(name);
}

}  // namespace medgym::cuda
