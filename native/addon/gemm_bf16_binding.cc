// gemmBf16 / gemmBf16Reference (+ Async): thin wrappers over native/cpu/gemm_bf16.h.
//   gemmBf16({X, W, Y, M, N, K, ldx?, ldw?, ldy?, bias?, beta?, mode?}):
//   Y[M,N] = X[M,K] @ W[N,K]^T (+ bias) (+ beta * Y). X and Y are Float32Arrays, W a Uint16Array of
//   bf16 bits; row strides default to K, K and N, and each array holds at least its last row's end.
//   mode: 'exact' (default), 'bf16dot', or 'packed' (exact numbers on sgemm's packed path: sgemm_bf16w).
#include <cfloat>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "addon/args.h"
#include "cpu/gemm_bf16.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1;

struct Bf16Call {
  Bf16Mode mode = Bf16Mode::Exact;
  bool packed = false;  // sgemm_bf16w (its reference: Exact's)
  int64_t M = 0, N = 0, K = 0, ldx = 0, ldw = 0, ldy = 0;
  float beta = 0.0f;
  const float* X = nullptr;
  const uint16_t* W = nullptr;
  const float* bias = nullptr;
  float* Y = nullptr;
  std::shared_ptr<std::vector<uint16_t>> w_copy;  // async: W's copy (the work's W points into it)
};

bool overlaps(const void* p, size_t pn, const void* q, size_t qn) {
  auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return pn && qn && a < b + qn && b < a + pn;
}

// Elements a [rows, cols] matrix with row stride ld spans (0 when empty).
int64_t span(const Args& a, int64_t rows, int64_t cols, int64_t ld) {
  if (rows == 0 || cols == 0) return 0;
  return checked_mul(a, {rows - 1, ld}) + cols;
}

void require_span(const Args& a, const char* name, const char* type, size_t length, int64_t need, const char* dims) {
  if (static_cast<int64_t>(length) < need)
    a.range_error(std::string("Expected ") + type + " of at least " + std::to_string(need) + " elements for `" + name +
                  "` (" + dims + ") but received length " + std::to_string(length) +
                  (length == 0 ? " (is its buffer detached?)" : ""));
}

// Where a typed array's elements are now, in the caller's memory (null and 0 when detached).
void js_range(Napi::Env env, Napi::Value v, const uint8_t** data, size_t* bytes) {
  napi_typedarray_type t;
  size_t n = 0, offset = 0;
  void* d = nullptr;
  napi_value buffer;
  *data = nullptr, *bytes = 0;
  if (napi_get_typedarray_info(env, v, &t, &n, &d, &buffer, &offset) != napi_ok || !n) return;
  *data = static_cast<const uint8_t*>(d);
  *bytes = n * (t == napi_float32_array ? 4 : t == napi_uint16_array ? 2 : 1);
}

const char* kind(Napi::Value v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) return "a typed array of another type";
  if (v.IsArray()) return "an Array";
  if (v.IsObject()) return "an object";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  return "a value of another type";
}

Bf16Call parse(Args& a, bool async) {
  Bf16Call g;
  g.M = a.integer("M", 0, kMaxDim);
  g.N = a.integer("N", 0, kMaxDim);
  g.K = a.integer("K", 0, kMaxDim);
  g.ldx = a.integer("ldx", g.K, kMaxDim, g.K);
  g.ldw = a.integer("ldw", g.K, kMaxDim, g.K);
  g.ldy = a.integer("ldy", g.N, kMaxDim, g.N);
  g.beta = static_cast<float>(a.number("beta", -FLT_MAX, FLT_MAX, 0.0));
  const int mode = a.choice("mode", {"exact", "bf16dot", "packed"}, 0);
  g.mode = mode == 1 ? Bf16Mode::Bf16Dot : Bf16Mode::Exact;
  g.packed = mode == 2;
  auto X = a.f32("X", -1);
  require_span(a, "X", "Float32Array", X.length, span(a, g.M, g.K, g.ldx), "M, K, ldx");
  auto bias = a.f32_optional("bias", g.N);
  Napi::Value y_value;
  auto Y = a.f32_out("Y", -1, &y_value);
  require_span(a, "Y", "Float32Array", Y.length, span(a, g.M, g.N, g.ldy), "M, N, ldy");
  // W last: Args reads no 16-bit arrays, so it is read here, after every other field, so that no
  // getter runs after it (one could detach it). Async calls copy it, as Args copies the others.
  Napi::Value w = a.get("W");
  napi_typedarray_type t = napi_int8_array;
  size_t wn = 0, offset = 0;
  void* wd = nullptr;
  napi_value buffer;
  if (!w.IsTypedArray() || napi_get_typedarray_info(a.env(), w, &t, &wn, &wd, &buffer, &offset) != napi_ok ||
      t != napi_uint16_array)
    a.type_error(std::string("Expected Uint16Array (bf16 bits) for `W` but received ") + kind(w));
  if (!wn) wd = nullptr;
  require_span(a, "W", "Uint16Array", wn, span(a, g.N, g.K, g.ldw), "N, K, ldw");
  // Y is written while the others are read: it must not share their memory.
  const uint8_t* y_js;
  size_t y_bytes;
  js_range(a.env(), y_value, &y_js, &y_bytes);
  if (overlaps(y_js, y_bytes, wd, wn * 2)) a.range_error("`Y` must not share memory with `W`");
  if (overlaps(Y.data, Y.length * 4, X.data, X.length * 4)) a.range_error("`Y` must not share memory with `X`");
  if (overlaps(Y.data, Y.length * 4, bias.data, bias.length * 4)) a.range_error("`Y` must not share memory with `bias`");
  g.W = static_cast<const uint16_t*>(wd);
  if (async && wn) {
    try {
      g.w_copy = std::make_shared<std::vector<uint16_t>>(g.W, g.W + wn);
    } catch (const std::bad_alloc&) {
      a.range_error("out of memory copying `W` for the async call");
    }
    g.W = g.w_copy->data();
  }
  g.X = X.data, g.Y = Y.data, g.bias = bias.data;
  return g;
}

template <bool kReference>
Napi::Value GemmBf16(const Napi::CallbackInfo& info, bool async) {
  Args a(info, kReference ? "gemmBf16Reference" : "gemmBf16", async);
  Bf16Call g = parse(a, async);
  return a.run(async, [g] {
    if (kReference) return gemm_bf16_ref(g.mode, g.M, g.N, g.K, g.X, g.ldx, g.W, g.ldw, g.bias, g.beta, g.Y, g.ldy);
    if (!g.packed) return gemm_bf16(g.mode, g.M, g.N, g.K, g.X, g.ldx, g.W, g.ldw, g.bias, g.beta, g.Y, g.ldy);
    sgemm_bf16w(g.M, g.N, g.K, 1.0f, g.X, g.ldx, g.W, g.ldw, g.beta, g.Y, g.ldy);
    if (g.bias)
      for (int64_t i = 0; i < g.M; ++i)
        for (int64_t j = 0; j < g.N; ++j) g.Y[i * g.ldy + j] += g.bias[j];
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "gemmBf16", GemmBf16<false>);
  export_sync_async(env, exports, "gemmBf16Reference", GemmBf16<true>);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
