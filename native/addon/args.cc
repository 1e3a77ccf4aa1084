#include "addon/args.h"

#include <cmath>
#include <cstring>
#include <mutex>
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

// Messages of exceptions from the work (the kernels, the model) name the call like the argument checks.
std::string named(const char* fn, const char* what) {
  std::string msg = what ? what : "";
  const std::string prefix = std::string(fn) + ": ";
  return msg.compare(0, prefix.size(), prefix) == 0 ? msg : prefix + msg;
}

// The elements of typed array `v` now: none (and no data) once its buffer is detached, or when it is a
// view on a shrunk resizable buffer that it no longer fits in.
bool typed_info(napi_env env, napi_value v, napi_typedarray_type* type, size_t* length, uint8_t** data) {
  napi_value buffer;
  size_t offset = 0;
  void* d = nullptr;
  if (napi_get_typedarray_info(env, v, type, length, &d, &buffer, &offset) != napi_ok) return false;
  *data = *length ? static_cast<uint8_t*>(d) : nullptr;
  return true;
}

// Blocks for the async copies, recycled: a fresh large allocation costs a page fault per 4 KiB, often
// more than the copy itself, and repeated async calls of the same sizes are the usual case. Holds at
// most kPoolBytes of free blocks; shared by the threads of all Node environments (hence the mutex).
class CopyPool {
 public:
  static constexpr size_t kMinBytes = size_t(64) << 10;   // smaller ones: plain allocations
  static constexpr size_t kPoolBytes = size_t(128) << 20;  // free blocks kept at most
  static CopyPool& instance() {
    static CopyPool* pool = new CopyPool;  // never destroyed: blocks may come back during exit
    return *pool;
  }
  // A block of at least `bytes` (null when out of memory).
  CopyBlock take(size_t bytes) {
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i)  // the smallest that fits, wasting at most half of it
        if (free_[i].second >= bytes && free_[i].second / 2 <= bytes &&
            (best == free_.size() || free_[i].second < free_[best].second))
          best = i;
      if (best < free_.size()) {
        CopyBlock b(free_[best].first, CopyBlockRelease{free_[best].second});
        cached_ -= free_[best].second;
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return b;
      }
    }
    return CopyBlock(new (std::nothrow) uint8_t[bytes], CopyBlockRelease{bytes});
  }
  void give(uint8_t* p, size_t capacity) {
    if (capacity >= kMinBytes && capacity <= kPoolBytes / 2) {
      std::lock_guard<std::mutex> lock(mu_);
      free_.emplace_back(p, capacity);
      cached_ += capacity;
      while (cached_ > kPoolBytes) {  // the oldest go first
        cached_ -= free_.front().second;
        delete[] free_.front().first;
        free_.erase(free_.begin());
      }
      return;
    }
    delete[] p;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<uint8_t*, size_t>> free_;
  size_t cached_ = 0;
};

std::vector<InitFn>& registry() {
  static std::vector<InitFn> inits;
  return inits;
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* fn, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                HeldArrays arrays)
      : Napi::AsyncWorker(env, "medgym"),
        name_(fn),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        result_(std::move(result)),
        arrays_(std::move(arrays)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const std::out_of_range& e) {
      kind_ = 2, SetError(named(name_, e.what()));
    } catch (const std::invalid_argument& e) {
      kind_ = 1, SetError(named(name_, e.what()));
    } catch (const std::bad_alloc&) {
      kind_ = 2, SetError(out_of_memory(name_));
    } catch (const std::length_error&) {
      kind_ = 2, SetError(out_of_memory(name_));
    } catch (const std::exception& e) {
      SetError(named(name_, e.what()));
    } catch (...) {
      SetError(named(name_, "native kernel failed with an unknown exception"));
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    // The work wrote into copies (see Held): publish them, unless the caller's array went meanwhile.
    const std::vector<std::string> lost = arrays_.write_back(env);
    if (!lost.empty()) {
      std::string names;
      for (size_t i = 0; i < lost.size(); ++i)
        names += (i == 0 ? "`" : i + 1 == lost.size() ? "` and `" : "`, `") + lost[i];
      deferred_.Reject(Napi::Error::New(env, std::string(name_) + ": " + names + "` " +
                                                 (lost.size() == 1 ? "was" : "were") +
                                                 " detached, transferred or resized while the call ran: the call's "
                                                 "results were not written into " + (lost.size() == 1 ? "it" : "them"))
                           .Value());
      return;
    }
    // An exception must not leave this callback (no JS frame would catch it) nor the promise pending.
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception&) {
      deferred_.Reject(Napi::RangeError::New(env, out_of_memory(name_)).Value());
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
  HeldArrays arrays_;
  int kind_ = 0;
};

}  // namespace

void CopyBlockRelease::operator()(uint8_t* p) const {
  if (p) CopyPool::instance().give(p, capacity);
}

std::vector<std::string> HeldArrays::write_back(napi_env env) {
  std::vector<std::string> lost;
  for (Held& h : held) {
    if (!h.output || !h.bytes) continue;
    napi_typedarray_type type;
    size_t n = 0;
    uint8_t* data = nullptr;
    if (typed_info(env, h.ref.Value(), &type, &n, &data) && n == h.length && data) std::memcpy(data, h.copy, h.bytes);
    else lost.push_back(h.name);
  }
  return lost;
}

Args::Args(const Napi::CallbackInfo& info, const char* fn, bool async) : env_(info.Env()), fn_(fn), async_(async) {
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

// A getter or a Proxy trap of the options runs JS in the middle of reading them; that JS could
// transfer, detach or shrink an array read before, and its memory could then be freed (a use after
// free in the work or in a check). So the arrays held so far are checked again after every read.
Napi::Value Args::get(const char* name) {
  Napi::Value v = opts_.Get(name);
  recheck();
  return v;
}

void Args::recheck() {
  for (const Held& h : arrays_.held) {
    if (!h.bytes) continue;
    napi_typedarray_type type;
    size_t n = 0;
    uint8_t* data = nullptr;
    if (!typed_info(env_, h.ref.Value(), &type, &n, &data) || n != h.length || data != h.js)
      range_error("`" + h.name + "` was detached, transferred or resized while the options were read (by a getter or a Proxy)");
  }
}

bool Args::has(const char* name) {
  Napi::Value v = get(name);
  return !v.IsUndefined() && !v.IsNull();
}

int64_t Args::integer(const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = get(name);
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
  Napi::Value v = get(name);
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
  Napi::Value v = get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) type_error("Expected boolean for `" + std::string(name) + "` but received " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

int Args::choice(const char* name, std::initializer_list<const char*> choices, int fallback) {
  std::string list;
  for (const char* c : choices) list += (list.empty() ? "'" : ", '") + std::string(c) + "'";
  Napi::Value v = get(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (fallback >= 0) return fallback;
    type_error("Expected one of " + list + " for `" + name + "` but received " + describe(v));
  }
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

// Holds typed array `v` until the work is done and returns where the work finds its elements: the
// caller's memory (sync), or a native copy (async: see Held). Async, arrays that share memory share
// their copy (an in-place call, e.g. `out` = `input`, works as in sync), when one lies inside the other.
uint8_t* Args::hold(const std::string& name, Napi::Value v, uint8_t* js, size_t length, size_t bytes, bool output) {
  uint8_t* use = js;
  if (async_ && bytes) {
    use = nullptr;
    for (const Held& h : arrays_.held)
      if (h.bytes && js >= h.js && js + bytes <= h.js + h.bytes) {
        use = h.copy + (js - h.js);
        break;
      }
    if (!use) {
      for (const Held& h : arrays_.held)
        if (h.bytes && js < h.js + h.bytes && h.js < js + bytes)
          range_error("`" + name + "` overlaps `" + h.name +
                      "` in part: an async call takes arrays that are the same, disjoint, or inside an array read before");
      CopyBlock block = CopyPool::instance().take(bytes);
      if (!block) range_error("out of memory copying `" + name + "` for the async call");
      std::memcpy(block.get(), js, bytes);
      use = block.get();
      arrays_.blocks.push_back(std::move(block));
    }
  }
  Held h;
  h.ref = Napi::Persistent(v);
  h.name = name;
  h.js = js;
  h.length = length;
  h.bytes = bytes;
  h.copy = use;
  h.output = output;
  arrays_.held.push_back(std::move(h));
  return use;
}

template <typename T>
View<T> Args::typed(const char* name, int64_t length, napi_typedarray_type type, const char* type_name,
                    bool optional, bool output, Napi::Value* value) {
  Napi::Value v = get(name);
  if (value) *value = v;
  if (optional && (v.IsUndefined() || v.IsNull())) return {};
  napi_typedarray_type t = napi_int8_array;
  size_t n = 0;
  uint8_t* data = nullptr;
  if (!v.IsTypedArray() || !typed_info(env_, v, &t, &n, &data) || t != type)
    type_error(std::string("Expected ") + type_name + " for `" + name + "` but received " + describe(v));
  if (length >= 0 && static_cast<int64_t>(n) != length)
    range_error(std::string("Expected ") + type_name + " of length " + std::to_string(length) + " for `" +
                name + "` but received length " + std::to_string(n) +
                (n == 0 ? " (is its buffer detached?)" : ""));
  View<T> view;
  view.length = n;
  view.data = reinterpret_cast<T*>(hold(name, v, data, n, n * sizeof(T), output));
  return view;
}

View<float> Args::f32(const char* name, int64_t length) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", false, false, nullptr);
}
View<float> Args::f32_optional(const char* name, int64_t length) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", true, false, nullptr);
}
View<int32_t> Args::i32(const char* name, int64_t length) {
  return typed<int32_t>(name, length, napi_int32_array, "Int32Array", false, false, nullptr);
}
View<int32_t> Args::i32_optional(const char* name, int64_t length) {
  return typed<int32_t>(name, length, napi_int32_array, "Int32Array", true, false, nullptr);
}
View<uint16_t> Args::u16(const char* name, int64_t length) {
  return typed<uint16_t>(name, length, napi_uint16_array, "Uint16Array", false, false, nullptr);
}
bool Args::is_typed(const char* name, napi_typedarray_type type) {
  Napi::Value v = get(name);
  napi_typedarray_type t = napi_int8_array;
  size_t n = 0;
  uint8_t* data = nullptr;
  return v.IsTypedArray() && typed_info(env_, v, &t, &n, &data) && t == type;
}
View<float> Args::f32_out(const char* name, int64_t length, Napi::Value* value) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", false, true, value);
}
View<float> Args::f32_out_optional(const char* name, int64_t length, Napi::Value* value) {
  return typed<float>(name, length, napi_float32_array, "Float32Array", true, true, value);
}

std::vector<View<float>> Args::f32_list(const char* name, const std::vector<int64_t>& lengths, bool output) {
  Napi::Value v = get(name);
  if (!v.IsArray()) type_error("Expected an Array of Float32Array for `" + std::string(name) + "` but received " + describe(v));
  auto arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  if (!lengths.empty() && n != lengths.size())
    range_error("Expected " + std::to_string(lengths.size()) + " arrays for `" + name + "` but received " +
                std::to_string(n));
  // Every element first (an element getter may run JS), then the views, so that none is taken before
  // that JS has run. Nothing is reserved from the claimed length: a sparse array can claim 2^32 - 1.
  std::vector<Napi::Value> elems;
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      type_error("Expected Float32Array for `" + std::string(name) + "[" + std::to_string(i) + "]` but received " +
                 describe(e));
    elems.push_back(e);
  }
  recheck();
  std::vector<View<float>> out;
  for (uint32_t i = 0; i < n; ++i) {
    std::string label = std::string(name) + "[" + std::to_string(i) + "]";
    napi_typedarray_type t;
    size_t len = 0;
    uint8_t* data = nullptr;
    if (!typed_info(env_, elems[i], &t, &len, &data)) type_error("Expected Float32Array for `" + label + "`");
    if (!lengths.empty() && static_cast<int64_t>(len) != lengths[i])
      range_error("Expected Float32Array of length " + std::to_string(lengths[i]) + " for `" + label +
                  "` but received length " + std::to_string(len));
    View<float> view;
    view.length = len;
    view.data = reinterpret_cast<float*>(hold(label, elems[i], data, len, len * sizeof(float), output));
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

void Args::require_finite_bf16(const char* name, View<uint16_t> v) {
  for (size_t i = 0; i < v.length; ++i)
    if ((v.data[i] & 0x7F80u) == 0x7F80u)
      range_error("Expected finite bf16 values in `" + std::string(name) + "` but element " + std::to_string(i) +
                  " is " + ((v.data[i] & 0x7Fu) ? "NaN" : "infinite"));
}

Napi::Value Args::run(bool async, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result) {
  if (!async) {
    try {
      work();
    } catch (const std::out_of_range& e) {
      throw Napi::RangeError::New(env_, named(fn_, e.what()));
    } catch (const std::invalid_argument& e) {
      throw Napi::TypeError::New(env_, named(fn_, e.what()));
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(env_, out_of_memory(fn_));
    } catch (const std::length_error&) {
      throw Napi::RangeError::New(env_, out_of_memory(fn_));
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env_, named(fn_, e.what()));
    }
    return result ? result(env_) : env_.Undefined();
  }
  // The work must not touch the caller's memory once this call has returned (see Held).
  if (!async_) throw Napi::Error::New(env_, std::string(fn_) + ": internal error: arguments not read for an async call");
  auto* worker = new PromiseWorker(env_, fn_, std::move(work), std::move(result), std::move(arrays_));
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
