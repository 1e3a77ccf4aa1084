// Shared by the policy and session bindings: handles, argument readers for ragged batches, the
// memory guard. See policy_common.h.
#include "addon/policy_common.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "model/accelerator.h"

namespace medgym::addon::policy {

std::shared_ptr<Model> get_model(Args& a, const Napi::CallbackInfo& info) {
  auto* h = unwrap<ModelHandle>(a, info, "model", kModelTag, "policy model");
  if (!h->m) a.type_error("the policy model was disposed (`model`)");
  return h->m;
}
std::shared_ptr<Session> get_session(Args& a, const Napi::CallbackInfo& info) {
  auto* h = unwrap<SessionHandle>(a, info, "session", kSessionTag, "generation session");
  if (!h->s) a.type_error("the generation session was disposed (`session`)");
  return h->s;
}

// A session's KV caches hold keys/values of the weights it was created with.
void require_fresh(Args& a, const Session& s) {
  if (s.weights_version() != s.model()->weights_version)
    throw Napi::Error::New(a.env(), std::string(a.fn()) +
                                        ": the model's weights changed since this session was created (its KV caches "
                                        "are stale): create a new session (`session`)");
}



std::vector<uint8_t> read_u8(Args& a, const Napi::CallbackInfo& info, const char* name, int64_t length) {
  Napi::Value v = a.get(name);
  if ((v.IsUndefined() || v.IsNull()) && length == 0) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    a.type_error("Expected Uint8Array for `" + std::string(name) + "`");
  auto ta = v.As<Napi::Uint8Array>();
  if (static_cast<int64_t>(ta.ElementLength()) != length)
    a.range_error("Expected Uint8Array of length " + std::to_string(length) + " for `" + name + "` but received length " +
                  std::to_string(ta.ElementLength()));
  return std::vector<uint8_t>(ta.Data(), ta.Data() + length);
}

std::vector<double> read_numbers(Args& a, const Napi::CallbackInfo& info, const char* name, size_t n, double hi) {
  Napi::Value v = a.get(name);
  if (!v.IsArray()) a.type_error("Expected an Array of integers for `" + std::string(name) + "`");
  auto arr = v.As<Napi::Array>();
  if (arr.Length() != n)
    a.range_error("Expected " + std::to_string(n) + " entries for `" + name + "` but received " + std::to_string(arr.Length()));
  std::vector<double> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(i);
    double x = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!(x >= 0 && x <= hi && x == std::floor(x)))
      a.range_error("Expected integers in [0, " + std::to_string(hi) + "] for `" + name + "` but entry " + std::to_string(i) + " is not");
    out[i] = x;
  }
  a.recheck();  // element getters may have run JS
  return out;
}

std::vector<uint64_t> read_counters(Args& a, const Napi::CallbackInfo& info, size_t n) {
  std::vector<uint64_t> out(n, 0);
  if (!a.has("counters")) return out;
  auto v = read_numbers(a, info, "counters", n, 9007199254740991.0);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint64_t>(v[i]);
  return out;
}

std::vector<std::string> read_strings(Args& a, const Napi::CallbackInfo& info, const char* name) {
  Napi::Value v = a.get(name);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsArray()) a.type_error("Expected an Array of strings for `" + std::string(name) + "`");
  auto arr = v.As<Napi::Array>();
  if (arr.Length() > 4096) a.range_error("Expected at most 4096 entries for `" + std::string(name) + "`");
  std::vector<std::string> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsString()) a.type_error("Expected a string at entry " + std::to_string(i) + " of `" + name + "`");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  a.recheck();  // element getters may have run JS
  return out;
}


BatchIn read_batch(Args& a, const Napi::CallbackInfo& info, const Config& c, bool with_mask) {
  BatchIn b;
  auto lengths = a.i32("lengths", -1);
  if (lengths.length < 1) a.range_error("Expected at least one sequence in `lengths`");
  // Per-sequence bookkeeping is ~30x a length's 4 bytes: bound the count so a huge array of empty
  // sequences is refused rather than allocated for (far more than any batch or session call needs).
  constexpr size_t kMaxSequences = size_t(1) << 16;
  if (lengths.length > kMaxSequences)
    a.range_error("Expected at most " + std::to_string(kMaxSequences) + " sequences in `lengths` but received " +
                  std::to_string(lengths.length));
  int64_t total = 0;
  b.offsets.push_back(0);
  for (size_t i = 0; i < lengths.length; ++i) {
    if (lengths.data[i] < 0) a.range_error("Expected lengths >= 0 in `lengths` but element " + std::to_string(i) + " is negative");
    total += lengths.data[i];
    b.offsets.push_back(total);
  }
  auto tokens = a.i32("tokens", total);
  b.tokens.assign(tokens.data, tokens.data + total);
  b.n_images = a.integer("nImages", 0, int64_t(1) << 24);
  b.pixels = read_u8(a, info, "images", checked_mul(a, {b.n_images, c.image_bytes()}));
  if (with_mask) {
    auto m = a.i32_optional("mask", total);
    if (m) b.mask.assign(m.data, m.data + total);
  }
  int64_t img = 0;
  for (size_t s = 0; s + 1 < b.offsets.size(); ++s) {
    b.image_offsets.push_back(img);
    for (int64_t i = b.offsets[s]; i < b.offsets[s + 1]; ++i) {
      int32_t id = b.tokens[i];
      if (id < 0 || id >= c.V)
        a.range_error("Expected token ids in [0, " + std::to_string(c.V) + ") for `tokens` but element " + std::to_string(i) +
                      " is " + std::to_string(id));
      img += id == c.image_id;
    }
  }
  return b;
}

// Refuses a batch whose activations would not fit in memory (rather than being OOM-killed later).
void require_memory(Args& a, const Model& m, int64_t rows, bool keep) {
  if (m.accel) return checked(a, [&] { m.accel->check_rows(rows, keep); });  // device memory
  const double need = 4.0 * static_cast<double>(rows) *
                      static_cast<double>(model::Acts::floats_per_row(m.cfg, keep) + (keep ? 14 * m.cfg.d : 0));
  const double phys = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  double limit = phys > 0 ? 0.75 * phys : 1e300;
  if (const char* env = std::getenv("MEDGYM_MAX_ACTIVATION_BYTES")) {  // a lower cap, e.g. on shared machines
    const double cap = std::atof(env);
    if (cap > 0 && cap < limit) limit = cap;
  }
  if (need > limit)
    a.range_error("the batch (`tokens`) expands to " + std::to_string(rows) + " positions whose activations need " +
                  std::to_string(static_cast<int64_t>(need / (1 << 20))) + " MiB, more than the limit of " +
                  std::to_string(static_cast<int64_t>(limit / (1 << 20))) +
                  " MiB (3/4 of RAM, or MEDGYM_MAX_ACTIVATION_BYTES): split it into micro-batches");
}

std::vector<SeqInput> seq_inputs(const BatchIn& b, const Config& c) {
  std::vector<SeqInput> v(b.offsets.size() - 1);
  for (size_t s = 0; s < v.size(); ++s) {
    v[s].tokens = b.tokens.data() + b.offsets[s];
    v[s].n_tokens = b.offsets[s + 1] - b.offsets[s];
    v[s].pixels = b.pixels.data() + b.image_offsets[s] * c.image_bytes();
    v[s].mask = b.mask.empty() ? nullptr : b.mask.data() + b.offsets[s];
  }
  return v;
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v) {
  auto out = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(out.Data(), v.data(), v.size() * sizeof(float));
  return out;
}

}  // namespace medgym::addon::policy
