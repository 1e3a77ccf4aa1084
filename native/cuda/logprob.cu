// Log-prob / entropy / log-softmax twins of cpu/logprob.h. One pass over each row for the forward
// (online max, Σe^(z-m), Σe^(z-m)(z-m) per thread, merged deterministically); the backward reads the
// row twice when it must recompute the statistics (lse null or dentropy given), once otherwise.
// z = logits * (1 / tau) as on the CPU; logp = (z_t - m) - log s.
#include <type_traits>

#include "cuda/rows.cuh"

namespace medgym::cuda {

namespace {

// Row statistics of z = x * it over the TPR threads of the row. packed: 16-byte loads (V % 4 == 0
// and an aligned base).
template <int TPR>
__device__ __forceinline__ LseState row_stats(const float* x, int64_t V, float it, bool packed, float* shared) {
  LseState st = lse_empty();
  const int lane = Row<TPR>::lane();
  if (packed) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t k = lane; k < V / 4; k += TPR) {
      const float4 v = x4[k];
      lse_add(st, v.x * it), lse_add(st, v.y * it), lse_add(st, v.z * it), lse_add(st, v.w * it);
    }
  } else {
    for (int64_t k = lane; k < V; k += TPR) lse_add(st, x[k] * it);
  }
  return Row<TPR>::merge(st, shared);
}

template <int TPR>
__global__ void __launch_bounds__(kRowBlock) logprob_forward_kernel(const float* logits, const int32_t* targets,
                                                                    int64_t N, int64_t V, float it, float* logp,
                                                                    float* entropy, float* lse, bool packed) {
  __shared__ float sh[96];
  const int64_t r = Row<TPR>::index();
  if (r >= N) return;
  const int t = targets[r];
  const bool lead = Row<TPR>::lane() == 0;
  if (t < 0) {  // ignored row
    if (lead) {
      logp[r] = 0.0f;
      if (entropy) entropy[r] = 0.0f;
      if (lse) lse[r] = 0.0f;
    }
    return;
  }
  const float* x = logits + r * V;
  const LseState st = row_stats<TPR>(x, V, it, packed && V % 4 == 0, sh);
  if (lead) {
    const float log_s = logf(st.s);
    logp[r] = (x[t] * it - st.m) - log_s;
    if (entropy) entropy[r] = log_s - st.u / st.s;
    if (lse) lse[r] = st.m + log_s;
  }
}

// d (+)= (-p_k (g + h (u_k + H)) + g 1[k = t]) / tau with u_k = max(z_k - lse, -100), p_k = e^u_k.
template <int TPR>
__global__ void __launch_bounds__(kRowBlock) logprob_backward_kernel(const float* logits, const int32_t* targets,
                                                                     const float* lse_in, const float* dlogp,
                                                                     const float* dentropy, int64_t N, int64_t V,
                                                                     float it, float* dlogits, bool acc, bool packed) {
  __shared__ float sh[96];
  const int64_t r = Row<TPR>::index();
  if (r >= N) return;
  const int lane = Row<TPR>::lane();
  const int t = targets[r];
  float* d = dlogits + r * V;
  if (t < 0) {
    if (!acc)
      for (int64_t k = lane; k < V; k += TPR) d[k] = 0.0f;
    return;
  }
  const float* x = logits + r * V;
  const float g = dlogp ? dlogp[r] : 0.0f, h = dentropy ? dentropy[r] : 0.0f;
  float l = lse_in ? lse_in[r] : 0.0f, H = 0.0f;
  if (!lse_in || dentropy) {
    const LseState st = row_stats<TPR>(x, V, it, packed && V % 4 == 0, sh);
    if (!lse_in) l = lse_value(st);
    H = lse_entropy(st);
  }
  for (int64_t k = lane; k < V; k += TPR) {
    const float u = fmaxf(x[k] * it - l, kLseFloor);
    float grad = -exp_flush(u) * (g + h * (u + H)) * it;
    if (k == t) grad += g * it;
    d[k] = acc ? d[k] + grad : grad;
  }
}

template <int TPR>
__global__ void __launch_bounds__(kRowBlock) log_softmax_kernel(const float* logits, int64_t N, int64_t V, float it,
                                                                float* out, bool packed) {
  __shared__ float sh[96];
  const int64_t r = Row<TPR>::index();
  if (r >= N) return;
  const float* x = logits + r * V;
  const LseState st = row_stats<TPR>(x, V, it, packed && V % 4 == 0, sh);
  const float log_s = logf(st.s);
  float* o = out + r * V;  // may alias x: every element is read above before the merge's barrier/shuffles
  for (int64_t k = Row<TPR>::lane(); k < V; k += TPR) o[k] = (x[k] * it - st.m) - log_s;
}

bool aligned_rows(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void logprob_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature, float* logp,
                     float* entropy, float* lse, Stream s) {
  if (N <= 0) return;
  const float it = 1.0f / temperature;
  with_tpr(V, [&](auto tpr) {
    logprob_forward_kernel<decltype(tpr)::value><<<row_blocks(N, tpr), kRowBlock, 0, to_stream(s)>>>(
        logits, targets, N, V, it, logp, entropy, lse, aligned_rows(logits));
  });
  check_launch("logprob_forward kernel");
}

void logprob_backward(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                      const float* dentropy, int64_t N, int64_t V, float temperature, float* dlogits, bool accumulate,
                      Stream s) {
  if (N <= 0 || V <= 0) return;
  const float it = 1.0f / temperature;
  with_tpr(V, [&](auto tpr) {
    logprob_backward_kernel<decltype(tpr)::value><<<row_blocks(N, tpr), kRowBlock, 0, to_stream(s)>>>(
        logits, targets, lse, dlogp, dentropy, N, V, it, dlogits, accumulate, aligned_rows(logits));
  });
  check_launch("logprob_backward kernel");
}

void log_softmax_forward(const float* logits, int64_t N, int64_t V, float temperature, float* out, Stream s) {
  if (N <= 0 || V <= 0) return;
  const float it = 1.0f / temperature;
  with_tpr(V, [&](auto tpr) {
    log_softmax_kernel<decltype(tpr)::value><<<row_blocks(N, tpr), kRowBlock, 0, to_stream(s)>>>(
        logits, N, V, it, out, aligned_rows(logits));
  });
  check_launch("log_softmax_forward kernel");
}

}  // namespace medgym::cuda
