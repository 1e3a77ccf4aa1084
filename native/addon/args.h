// Argument unwrapping for native entry points. Every kernel takes one options object; each field is
// read by name, so every error names the argument the caller got wrong, e.g.
//   RangeError: gemm: Expected Float32Array of length 4096 for `A` but received length 4095
// Nothing here crashes on bad input: wrong types throw TypeError, wrong sizes/values RangeError.
// Hostile JS is expected too: a getter or Proxy trap that detaches an array read before (every read
// re-checks the arrays held), or a buffer transferred while an async call runs (async calls work on
// copies). test/fuzz/native.test.ts calls every export with such inputs.
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

// A typed array an entry point holds while it runs. Sync, the work uses the caller's memory (`js`);
// async, a native copy (`copy`), since JS runs meanwhile and may detach (transfer) or shrink the
// buffer and free that memory under the work; outputs are copied back when the work is done.
struct Held {
  Napi::Reference<Napi::Value> ref;  // the typed array (keeps it and its buffer alive)
  std::string name;
  uint8_t* js = nullptr;  // its elements when it was read
  size_t length = 0;      // elements
  size_t bytes = 0;
  uint8_t* copy = nullptr;  // async: what the work reads and writes
  bool output = false;
};
// Memory of the async copies; freed into a small pool of recycled blocks (see args.cc).
struct CopyBlockRelease {
  size_t capacity = 0;
  void operator()(uint8_t* p) const;
};
using CopyBlock = std::unique_ptr<uint8_t[], CopyBlockRelease>;
struct HeldArrays {
  std::vector<Held> held;
  std::vector<CopyBlock> blocks;  // the async copies
  // Async, on the JS thread once the work is done: copies the outputs back into the caller's arrays.
  // Returns the names of those that were detached or resized meanwhile (their results are dropped).
  std::vector<std::string> write_back(napi_env env);
};

class Args {
 public:
  // `async`: the work will run on the thread pool while JS runs on (run(true, ...)); typed arrays are
  // then read into native copies, see Held.
  Args(const Napi::CallbackInfo& info, const char* fn, bool async = false);

  Napi::Env env() const { return env_; }
  const char* fn() const { return fn_; }
  bool has(const char* name);
  // The field `name` of the options. Reading it may run JS (a getter, a Proxy trap), which could
  // detach or shrink an array read before: every read re-checks the held arrays (recheck()).
  Napi::Value get(const char* name);
  // Throws a RangeError if an array read so far was detached, transferred or resized since. Call it
  // after any other read that may run JS (array elements) before using the views read before it.
  void recheck();

  // Integer in [lo, hi]; `fallback` used when absent (pass nullptr-like via has() otherwise).
  int64_t integer(const char* name, int64_t lo, int64_t hi);
  int64_t integer(const char* name, int64_t lo, int64_t hi, int64_t fallback);
  double number(const char* name, double lo, double hi);
  double number(const char* name, double lo, double hi, double fallback);
  bool boolean(const char* name, bool fallback);
  // One of `choices`; returns its index.
  int choice(const char* name, std::initializer_list<const char*> choices, int fallback = -1);

  // Typed arrays of exactly `length` elements (length < 0: any length). Optional ones return an empty
  // View when the field is absent or null/undefined. Inputs: the work only reads them.
  View<float> f32(const char* name, int64_t length);
  View<float> f32_optional(const char* name, int64_t length);
  View<int32_t> i32(const char* name, int64_t length);
  View<int32_t> i32_optional(const char* name, int64_t length);
  View<uint16_t> u16(const char* name, int64_t length);
  // Whether field `name` is a typed array of `type`.
  bool is_typed(const char* name, napi_typedarray_type type);
  // Arrays the work writes (async: copied back when it is done). `value`, when given, receives the
  // typed array read (or undefined when an optional one is absent).
  View<float> f32_out(const char* name, int64_t length, Napi::Value* value = nullptr);
  View<float> f32_out_optional(const char* name, int64_t length, Napi::Value* value = nullptr);
  // A JS array of Float32Arrays (any lengths, or `lengths` when non-empty); `output`: the work writes them.
  std::vector<View<float>> f32_list(const char* name, const std::vector<int64_t>& lengths = {}, bool output = false);

  // Rejects NaN/Inf in `v` (naming the first bad index).
  void require_finite(const char* name, View<float> v);
  // The same for bf16 bits (exponent all ones: NaN or Inf).
  void require_finite_bf16(const char* name, View<uint16_t> v);

  [[noreturn]] void type_error(const std::string& msg) const;
  [[noreturn]] void range_error(const std::string& msg) const;

  // Runs `work` now (sync) or on the libuv thread pool (async, returning a Promise; the Args must have
  // been made with async = true). `result` builds the return value on the JS thread afterwards. The
  // arrays read stay referenced until the work is done.
  Napi::Value run(bool async, std::function<void()> work,
                  std::function<Napi::Value(Napi::Env)> result = nullptr);

 private:
  template <typename T>
  View<T> typed(const char* name, int64_t length, napi_typedarray_type type, const char* type_name,
                bool optional, bool output, Napi::Value* value);
  uint8_t* hold(const std::string& name, Napi::Value v, uint8_t* js, size_t length, size_t bytes, bool output);

  Napi::Env env_;
  Napi::Object opts_;
  const char* fn_;
  bool async_;
  HeldArrays arrays_;
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
