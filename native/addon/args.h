// Argument unwrapping for native entry points. Every kernel takes one options object; each field is
// read by name, so every error names the argument the caller got wrong, e.g.
//   RangeError: gemm: Expected Float32Array of length 4096 for `A` but received length 4095
// Nothing here crashes on bad input: wrong types throw TypeError, wrong sizes/values RangeError.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace medgym::addon {

template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
  explicit operator bool() const { return data != nullptr || length > 0; }
};

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn);

  Napi::Env env() const { return env_; }
  const char* fn() const { return fn_; }
  bool has(const char* name) const;

  // Integer in [lo, hi]; `fallback` used when absent (pass nullptr-like via has() otherwise).
  int64_t integer(const char* name, int64_t lo, int64_t hi);
  int64_t integer(const char* name, int64_t lo, int64_t hi, int64_t fallback);
  double number(const char* name, double lo, double hi);
  double number(const char* name, double lo, double hi, double fallback);
  bool boolean(const char* name, bool fallback);
  // One of `choices`; returns its index.
  int choice(const char* name, std::initializer_list<const char*> choices, int fallback = -1);

  // Typed arrays of exactly `length` elements (length < 0: any length). Optional ones return an empty
  // View when the field is absent or null/undefined.
  View<float> f32(const char* name, int64_t length);
  View<float> f32_optional(const char* name, int64_t length);
  View<int32_t> i32(const char* name, int64_t length);
  View<int32_t> i32_optional(const char* name, int64_t length);
  // A JS array of Float32Arrays (any lengths, or `lengths` when non-empty).
  std::vector<View<float>> f32_list(const char* name, const std::vector<int64_t>& lengths = {});

  // Rejects NaN/Inf in `v` (naming the first bad index).
  void require_finite(const char* name, View<float> v);

  [[noreturn]] void type_error(const std::string& msg) const;
  [[noreturn]] void range_error(const std::string& msg) const;

  // Runs `work` now (sync) or on the libuv thread pool (async, returning a Promise). `result` builds
  // the return value on the JS thread afterwards. Inputs stay referenced until the work is done.
  Napi::Value run(bool async, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> result = nullptr);

 private:
  Napi::Value field(const char* name) const;
  template <typename T>
  View<T> typed(const char* name, int64_t length, napi_typedarray_type type, const char* type_name,
                bool optional);

  Napi::Env env_;
  Napi::Object opts_;
  const char* fn_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
};

// Checked product of sizes (throws RangeError on overflow beyond 2^53).
int64_t checked_mul(const Args& a, std::initializer_list<int64_t> dims);

// Registration: each binding file adds its functions from a static initializer.
using InitFn = void (*)(Napi::Env, Napi::Object);
int register_init(InitFn fn);
void run_inits(Napi::Env env, Napi::Object exports);

// Exports `name` (sync) and `name + "Async"` (Promise) for an entry point `impl(info, async)`.
void export_sync_async(Napi::Env env, Napi::Object exports, const char* name,
                       Napi::Value (*impl)(const Napi::CallbackInfo&, bool));

}  // namespace medgym::addon

#define MEDGYM_CONCAT_(a, b) a##b
#define MEDGYM_CONCAT(a, b) MEDGYM_CONCAT_(a, b)
#define MEDGYM_REGISTER_BINDINGS(fn) \
  static const int MEDGYM_CONCAT(medgym_registered_, __LINE__) = ::medgym::addon::register_init(fn)
