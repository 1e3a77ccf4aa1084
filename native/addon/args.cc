#include "addon/args.h"

#include <cmath>
#include <new>
#include <stdexcept>

namespace medgym::addon {

namespace {

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      case napi_uint8_clamped_array: return "Uint8ClampedArray";
      case napi_int16_array: return "Int16Array";
      case napi_uint16_array: return "Uint16Array";
      default: return "a typed array of another type";
    }
  }
  if (v.IsArray()) return "an Array";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value().substr(0, 40) + "' of type string";
  if (v.IsNumber()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g of type number", v.As<Napi::Number>().DoubleValue());
    return buf;
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

// std::bad_alloc names nothing; say which call ran out and what to do.
std::string out_of_memory(const char* fn) {
  return std::string(fn) + ": out of memory (the inputs, or the model they need, are too large for this machine)";
}

std::vector<InitFn>& registry() {
  static std::vector<InitFn> inits;
  return inits;
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* fn, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                std::vector<Napi::Reference<Napi::Value>> keep)
      : Napi::AsyncWorker(env, "medgym"),
        name_(fn),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)),
        keep_(std::move(keep)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const std::out_of_range& e) {
      kind_ = 2, SetError(e.what());
    } catch (const std::invalid_argument& e) {
      kind_ = 1, SetError(e.what());
    } catch (const std::bad_alloc&) {
      kind_ = 2, SetError(out_of_memory(name_));
    } catch (const std::length_error&) {
      kind_ = 2, SetError(out_of_memory(name_));
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("native kernel failed with an unknown exception");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    std::string msg = e.Message();
    if (kind_ == 1) deferred_.Reject(Napi::TypeError::New(env, msg).Value());
    else if (kind_ == 2) deferred_.Reject(Napi::RangeError::New(env, msg).Value());
    else deferred_.Reject(e.Value());
  }

 private:
  const char* name_;
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  int kind_ = 0;
};

}  // namespace

Args::Args(const Napi::CallbackInfo& info, const char* fn) : env_(info.Env()), fn_(fn) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray())
    type_error(std::string("Expected an options object as the first argument but received ") +
               (info.Length() < 1 ? "nothing" : describe(info[0])));
  opts_ = info[0].As<Napi::Object>();
}

void Args::type_error(const std::string& msg) const {
  throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
}
void Args::range_error(const std::string& msg) const {
  throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
}

Napi::Value Args::field(const char* name) const { return opts_.Get(name); }

bool Args::has(const char* name) const {
  Napi::Value v = field(name);
  return !v.IsUndefined() && !v.IsNull();
}

int64_t Args::integer(const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = field(name);
  if (!v.IsNumber()) type_error("Expected integer for `" + std::string(name) + "` but received " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d))
    type_error("Expected integer for `" + std::string(name) + "` but received " + describe(v));
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    range_error("Expected integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] for `" +
                name + "` but received " + describe(v));
  return static_cast<int64_t>(d);
}

int64_t Args::integer(const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  return has(name) ? integer(name, lo, hi) : fallback;
}

double Args::number(const char* name, double lo, double hi) {
  Napi::Value v = field(name);
  if (!v.IsNumber()) type_error("Expected number for `" + std::string(name) + "` but received " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) range_error("Expected a finite number for `" + std::string(name) + "` but received " + describe(v));
  if (d < lo || d > hi) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "Expected number in [%g, %g] for `%s` but received ", lo, hi, name);
    range_error(buf + describe(v));
  }
  return d;
}

double Args::number(const char* name, double lo, double hi, double fallback) {
  return has(name) ? number(name, lo, hi) : fallback;
}

bool Args::boolean(const char* name, bool fallback) {
  if (!has(name)) return fallback;
  Napi::Value v = field(name);
  if (!v.IsBoolean()) type_error("Expected boolean for `" + std::string(name) + "` but received " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

int Args::choice(const char* name, std::initializer_list<const char*> choices, int fallback) {
  std::string list;
  for (const char* c : choices) list += (list.empty() ? "'" : ", '") + std::string(c) + "'";
  if (!has(name)) {
    if (fallback >= 0) return fallback;
    type_error("Expected one of " + list + " for `" + name + "` but received undefined");
  }
  Napi::Value v = field(name);
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    int i = 0;
    for (const char* c : choices) {
      if (s == c) return i;
      ++i;
    }
  }
  type_error("Expected one of " + list + " for `" + name + "` but received " + describe(v));
}

template <typename T>
View<T> Args::typed(const char* name, int64_t length, napi_typedarray_type type, const char* type_name,
                    bool optional) {
  Napi::Value v = field(name);
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    type_error(std::string("Expected ") + type_name + " for `" + name + "` but received " + describe(v));
  auto arr = v.As<Napi::TypedArray>();
  size_t n = arr.ElementLength();
  if (length >= 0 && static_cast<int64_t>(n) != length)
    range_error(std::string("Expected ") + type_name + " of length " + std::to_string(length) + " for `" +
                name + "` but received length " + std::to_string(n) +
                (n == 0 ? " (is its buffer detached?)" : ""));
  View<T> view;
  view.length = n;
  view.data = n ? reinterpret_cast<T*>(static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset())
                : nullptr;
  keep_.push_back(Napi::Persistent(v));
  return view;
}

View<float> Args::f32(const char* name, int64_t length) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", false);
}
View<float> Args::f32_optional(const char* name, int64_t length) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", true);
}
View<int32_t> Args::i32(const char* name, int64_t length) {
  return typed<int32_t>(name, length, napi_int32_array, "Int32Array", false);
}
View<int32_t> Args::i32_optional(const char* name, int64_t length) {
  return typed<int32_t>(name, length, napi_int32_array, "Int32Array", true);
}

std::vector<View<float>> Args::f32_list(const char* name, const std::vector<int64_t>& lengths) {
  Napi::Value v = field(name);
  if (!v.IsArray()) type_error("Expected an Array of Float32Array for `" + std::string(name) + "` but received " + describe(v));
  auto arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  if (!lengths.empty() && n != lengths.size())
    range_error("Expected " + std::to_string(lengths.size()) + " arrays for `" + name + "` but received " +
                std::to_string(n));
  std::vector<View<float>> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(i);
    std::string label = std::string(name) + "[" + std::to_string(i) + "]";
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      type_error("Expected Float32Array for `" + label + "` but received " + describe(e));
    auto ta = e.As<Napi::TypedArray>();
    size_t len = ta.ElementLength();
    if (!lengths.empty() && static_cast<int64_t>(len) != lengths[i])
      range_error("Expected Float32Array of length " + std::to_string(lengths[i]) + " for `" + label +
                  "` but received length " + std::to_string(len));
    View<float> view;
    view.length = len;
    view.data = len ? reinterpret_cast<float*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset())
                    : nullptr;
    keep_.push_back(Napi::Persistent(e));
    out.push_back(view);
  }
  return out;
}

void Args::require_finite(const char* name, View<float> v) {
  for (size_t i = 0; i < v.length; ++i)
    if (!std::isfinite(v.data[i]))
      range_error("Expected finite values in `" + std::string(name) + "` but element " + std::to_string(i) +
                  " is " + (std::isnan(v.data[i]) ? "NaN" : "infinite"));
}

Napi::Value Args::run(bool async, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result) {
  if (!async) {
    try {
      work();
    } catch (const std::out_of_range& e) {
      throw Napi::RangeError::New(env_, e.what());
    } catch (const std::invalid_argument& e) {
      throw Napi::TypeError::New(env_, e.what());
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(env_, out_of_memory(fn_));
    } catch (const std::length_error&) {
      throw Napi::RangeError::New(env_, out_of_memory(fn_));
    }
    return result ? result(env_) : env_.Undefined();
  }
  auto* worker = new PromiseWorker(env_, fn_, std::move(work), std::move(result), std::move(keep_));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

int64_t checked_mul(const Args& a, std::initializer_list<int64_t> dims) {
  const int64_t limit = int64_t(1) << 53;
  int64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && p > limit / d)) a.range_error("size overflow: the product of the dimensions is too large");
    p *= d;
  }
  return p;
}

int register_init(InitFn fn) {
  registry().push_back(fn);
  return static_cast<int>(registry().size());
}

void run_inits(Napi::Env env, Napi::Object exports) {
  for (InitFn fn : registry()) fn(env, exports);
}

void export_sync_async(Napi::Env env, Napi::Object exports, const char* name,
                       Napi::Value (*impl)(const Napi::CallbackInfo&, bool)) {
  exports.Set(name, Napi::Function::New(env, [impl](const Napi::CallbackInfo& info) { return impl(info, false); }, name));
  std::string async_name = std::string(name) + "Async";
  exports.Set(async_name, Napi::Function::New(env, [impl](const Napi::CallbackInfo& info) { return impl(info, true); },
                                              async_name));
}

}  // namespace medgym::addon
