// Row gathers / scatters / broadcasts and column sums of rowops.h. Row kernels: blockIdx.y strides
// over rows, x over columns (coalesced along a row). Memory-bound, one pass each.
#include "cuda/common.cuh"
#include "cuda/rowops.h"

namespace medgym::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kColChunk = 128;  // rows per partial of column_sum_add

// Grid for `rows` rows of `n` columns.
dim3 row_grid(int64_t rows, int64_t n) {
  const int64_t gx = std::min<int64_t>(ceil_div(n, kThreads), 16);
  const int64_t gy = std::min<int64_t>(rows, 65535);
  return dim3(static_cast<unsigned>(gx < 1 ? 1 : gx), static_cast<unsigned>(gy < 1 ? 1 : gy));
}

__device__ __forceinline__ int64_t col0() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t col_step() { return int64_t(gridDim.x) * blockDim.x; }

__global__ void rows_bias_kernel(float* out, const float* x, const float* bias, int64_t N, int64_t n) {
  for (int64_t r = blockIdx.y; r < N; r += gridDim.y)
    for (int64_t i = col0(); i < n; i += col_step()) out[r * n + i] = x ? x[r * n + i] + bias[i] : bias[i];
}

__global__ void gather_rows_sum_kernel(float* out, const float* base, const int64_t* offsets, int k, int64_t N,
                                       int64_t d) {
  for (int64_t r = blockIdx.y; r < N; r += gridDim.y) {
    const int64_t* o = offsets + r * k;
    for (int64_t i = col0(); i < d; i += col_step()) {
      float acc = 0.0f;
      bool first = true;
      for (int j = 0; j < k; ++j) {
        if (o[j] < 0) continue;
        const float v = base[o[j] + i];
        acc = first ? v : acc + v;
        first = false;
      }
      out[r * d + i] = acc;
    }
  }
}

__global__ void add_rows_indexed_kernel(float* out, const int64_t* rows, const float* src, int64_t n, int64_t d) {
  for (int64_t k = blockIdx.y; k < n; k += gridDim.y) {
    float* dst = out + rows[k] * d;
    for (int64_t i = col0(); i < d; i += col_step()) dst[i] += src[k * d + i];
  }
}

__global__ void gather_rows_kernel(float* out, const float* src, const int64_t* rows, int64_t n, int64_t d) {
  for (int64_t k = blockIdx.y; k < n; k += gridDim.y) {
    const float* s = src + rows[k] * d;
    for (int64_t i = col0(); i < d; i += col_step()) out[k * d + i] = s[i];
  }
}

__global__ void segment_rows_add_kernel(float* base, const int64_t* dst, const int64_t* start, const int64_t* src_rows,
                                        const float* src, int64_t d, int64_t nseg) {
  for (int64_t g = blockIdx.y; g < nseg; g += gridDim.y) {
    const int64_t b = start[g], e = start[g + 1];
    float* out = base + dst[g];
    for (int64_t i = col0(); i < d; i += col_step()) {
      float acc = out[i];
      for (int64_t k = b; k < e; ++k) acc += src[src_rows[k] * d + i];
      out[i] = acc;
    }
  }
}

// Stage 1: partial[c, i] = Σ rows [c*kColChunk, ...) of column i, in row order. grid (columns, chunks).
template <typename T>
__global__ void column_partial_kernel(float* partial, const T* x, int64_t N, int64_t n) {
  const int64_t c = blockIdx.y, r0 = c * kColChunk, r1 = min(N, r0 + kColChunk);
  for (int64_t i = col0(); i < n; i += col_step()) {
    float acc = 0.0f;
    for (int64_t r = r0; r < r1; ++r) acc += load_f(x + r * n + i);
    partial[c * n + i] = acc;
  }
}
// Stage 2: out[i] += Σ_c partial[c, i], in chunk order.
__global__ void column_combine_kernel(float* out, const float* partial, int64_t chunks, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += partial[c * n + i];
    out[i] += acc;
  }
}

template <typename T>
void column_sum_any(float* out, const T* x, int64_t N, int64_t n, cudaStream_t st, const char* name) {
  if (N <= 0 || n <= 0) return;
  const int64_t chunks = ceil_div(N, kColChunk);
  if (chunks > 65535) throw std::invalid_argument(std::string(name) + ": too many rows");
  Scratch part(size_t(chunks) * n * sizeof(float), st);
  const int64_t gx = std::min<int64_t>(ceil_div(n, kThreads), 64);
  column_partial_kernel<T><<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(chunks)), kThreads, 0, st>>>(
      part.as<float>(), x, N, n);
  check_launch(name);
  column_combine_kernel<<<grid_for(n, kThreads, 4096), kThreads, 0, st>>>(out, part.as<float>(), chunks, n);
  check_launch(name);
}

__global__ void kv_cache_write_kernel(float* kc, float* vc, int64_t slot_stride, int64_t head_stride, const float* src,
                                      int64_t ld, int64_t k_col, int64_t v_col, const int32_t* slot, const int32_t* pos,
                                      int64_t n_rows, int64_t H, int64_t hd) {
  const int64_t C = H * hd;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    const int64_t base = int64_t(slot[r]) * slot_stride + int64_t(pos[r]) * hd;
    const float* row = src + r * ld;
    for (int64_t c = col0(); c < C; c += col_step()) {
      const int64_t at = base + (c / hd) * head_stride + c % hd;
      kc[at] = row[k_col + c];
      vc[at] = row[v_col + c];
    }
  }
}

}  // namespace

void rows_bias(float* out, const float* x, const float* bias, int64_t N, int64_t n, Stream s) {
  if (N <= 0 || n <= 0) return;
  rows_bias_kernel<<<row_grid(N, n), kThreads, 0, to_stream(s)>>>(out, x, bias, N, n);
  check_launch("rows_bias kernel");
}

void gather_rows_sum(float* out, const float* base, const int64_t* offsets, int k, int64_t N, int64_t d, Stream s) {
  if (N <= 0 || d <= 0) return;
  gather_rows_sum_kernel<<<row_grid(N, d), kThreads, 0, to_stream(s)>>>(out, base, offsets, k, N, d);
  check_launch("gather_rows_sum kernel");
}

void add_rows_indexed(float* out, const int64_t* rows, const float* src, int64_t n, int64_t d, Stream s) {
  if (n <= 0 || d <= 0) return;
  add_rows_indexed_kernel<<<row_grid(n, d), kThreads, 0, to_stream(s)>>>(out, rows, src, n, d);
  check_launch("add_rows_indexed kernel");
}

void gather_rows(float* out, const float* src, const int64_t* rows, int64_t n, int64_t d, Stream s) {
  if (n <= 0 || d <= 0) return;
  gather_rows_kernel<<<row_grid(n, d), kThreads, 0, to_stream(s)>>>(out, src, rows, n, d);
  check_launch("gather_rows kernel");
}

void segment_rows_add(float* base, const int64_t* dst, const int64_t* start, const int64_t* src_rows, const float* src,
                      int64_t d, int64_t nseg, Stream s) {
  if (nseg <= 0 || d <= 0) return;
  segment_rows_add_kernel<<<row_grid(nseg, d), kThreads, 0, to_stream(s)>>>(base, dst, start, src_rows, src, d, nseg);
  check_launch("segment_rows_add kernel");
}

void column_sum_add(float* out, const float* x, int64_t N, int64_t n, Stream s) {
  column_sum_any(out, x, N, n, to_stream(s), "column_sum_add kernel");
}
void column_sum_add_bf16(float* out, const Bf16* x, int64_t N, int64_t n, Stream s) {
  column_sum_any(out, to_bf(x), N, n, to_stream(s), "column_sum_add_bf16 kernel");
}

void kv_cache_write(float* k_cache, float* v_cache, int64_t slot_stride, int64_t head_stride, const float* src,
                    int64_t ld, int64_t k_col, int64_t v_col, const int32_t* slot, const int32_t* pos, int64_t n_rows,
                    int64_t H, int64_t hd, Stream s) {
  if (n_rows <= 0 || H <= 0 || hd <= 0) return;
  kv_cache_write_kernel<<<row_grid(n_rows, H * hd), kThreads, 0, to_stream(s)>>>(
      k_cache, v_cache, slot_stride, head_stride, src, ld, k_col, v_col, slot, pos, n_rows, H, hd);
  check_launch("kv_cache_write kernel");
}

}  // namespace medgym::cuda
