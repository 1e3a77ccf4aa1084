// Row gathers, scatters, broadcasts and column sums over [rows, n] float matrices on the device: the
// glue a packed-row model needs around the kernels of kernels.h (embedding lookups and their
// gradients, bias broadcasts and bias gradients, KV-cache writes). Same conventions as kernels.h:
// device pointers, enqueued on a stream, zero sizes are no-ops, no floating-point atomics (every sum
// has a fixed order). Their reference is the plain loop in each comment; medgym_cuda_check compares
// them with it (native/model/gpu/check/check_rowops.cc) and, through the policy, with the CPU model.
#pragma once
#include <cstdint>

#include "cuda/kernels.h"

namespace medgym::cuda {

// out[r, i] = (x ? x[r, i] : 0) + bias[i] for r < N, i < n (out may be x).
void rows_bias(float* out, const float* x, const float* bias, int64_t N, int64_t n, Stream s);

// out[r, i] = Σ_{j < k, offsets[r*k + j] >= 0} base[offsets[r*k + j] + i], summed in j order starting from
// the first term (an embedding lookup: each row adds up to k table rows given by their float offsets).
void gather_rows_sum(float* out, const float* base, const int64_t* offsets, int k, int64_t N, int64_t d, Stream s);

// out[rows[k], :] += src[k, :] for k < n (rows distinct).
void add_rows_indexed(float* out, const int64_t* rows, const float* src, int64_t n, int64_t d, Stream s);

// out[k, :] = src[rows[k], :] for k < n.
void gather_rows(float* out, const float* src, const int64_t* rows, int64_t n, int64_t d, Stream s);

// Segmented row sums added into table rows: for segment g < nseg,
//   base[dst[g] + i] += src[src_rows[k], i] for k = start[g] .. start[g + 1] - 1, one k after the other
// (left to right onto the old value: the order of a serial loop over the rows). Destinations distinct.
void segment_rows_add(float* base, const int64_t* dst, const int64_t* start, const int64_t* src_rows, const float* src,
                      int64_t d, int64_t nseg, Stream s);

// out[i] += Σ_r x[r, i] (a bias gradient). Rows are summed in fixed chunks of 128, then the chunks in
// order: deterministic, independent of the device.
void column_sum_add(float* out, const float* x, int64_t N, int64_t n, Stream s);
void column_sum_add_bf16(float* out, const Bf16* x, int64_t N, int64_t n, Stream s);

// Appends rows to head-major KV caches: for r < n_rows, head h < H, e < hd,
//   k_cache[slot[r] * slot_stride + h * head_stride + pos[r] * hd + e] = src[r * ld + k_col + h * hd + e]
// and the same for v_cache with v_col (the K and V thirds of a fused qkv row).
void kv_cache_write(float* k_cache, float* v_cache, int64_t slot_stride, int64_t head_stride, const float* src,
                    int64_t ld, int64_t k_col, int64_t v_col, const int32_t* slot, const int32_t* pos, int64_t n_rows,
                    int64_t H, int64_t hd, Stream s);

}  // namespace medgym::cuda
