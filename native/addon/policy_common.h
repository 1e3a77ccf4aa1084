// What the policy and session bindings share: type-tagged handles, the one-heavy-op-per-model guard,
// readers of ragged batches and key arrays, the activation-memory guard and the config reader.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/model.h"

namespace medgym::addon::policy {

using model::Config;
using model::Model;
using model::SeqInput;
using model::Session;

inline constexpr napi_type_tag kModelTag = {0x6d656467796d4d6full, 0x64656c0000000001ull};
inline constexpr napi_type_tag kSessionTag = {0x6d656467796d5365ull, 0x7373696f6e000001ull};

struct ModelHandle {
  std::shared_ptr<Model> m;
};
struct SessionHandle {
  std::shared_ptr<Session> s;
};

template <typename H>
H* unwrap(Args& a, const Napi::CallbackInfo& info, const char* name, const napi_type_tag& tag, const char* what) {
  Napi::Value v = a.get(name);
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &tag, &ok);
  if (!ok) a.type_error(std::string("Expected a ") + what + " handle for `" + name + "`");
  return v.As<Napi::External<H>>().Data();
}

std::shared_ptr<Model> get_model(Args& a, const Napi::CallbackInfo& info);
std::shared_ptr<Session> get_session(Args& a, const Napi::CallbackInfo& info);

// A session's KV caches hold keys/values of the weights it was created with.
void require_fresh(Args& a, const Session& s);

// Marks a model (anything with an atomic `busy`: medgym-vlm, qwen) busy for one heavy op; the
// returned guard (captured by the work) frees it.
template <typename M>
struct BusyGuard {
  explicit BusyGuard(std::shared_ptr<M> model) : m(std::move(model)) {}
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;
  ~BusyGuard() { m->busy = false; }
  std::shared_ptr<M> m;
};
using Busy = BusyGuard<Model>;
template <typename M>
std::shared_ptr<BusyGuard<M>> acquire(Args& a, const std::shared_ptr<M>& m) {
  if (m->busy.exchange(true))
    throw Napi::Error::New(a.env(), std::string(a.fn()) + ": the model is busy with another operation (await it first)");
  return std::make_shared<BusyGuard<M>>(m);
}

// Runs a model-level check that throws std::out_of_range / invalid_argument, as a JS error naming `fn`.
template <typename F>
void checked(Args& a, F&& f) {
  try {
    f();
  } catch (const std::out_of_range& e) {
    a.range_error(e.what());
  } catch (const std::invalid_argument& e) {
    a.type_error(e.what());
  }
}

std::vector<uint8_t> read_u8(Args& a, const Napi::CallbackInfo& info, const char* name, int64_t length);
std::vector<double> read_numbers(Args& a, const Napi::CallbackInfo& info, const char* name, size_t n, double hi);
// Optional `counters` of n sequences (session add): the draws each SPEC §7 stream already made (default 0 each).
std::vector<uint64_t> read_counters(Args& a, const Napi::CallbackInfo& info, size_t n);
std::vector<std::string> read_strings(Args& a, const Napi::CallbackInfo& info, const char* name);

// A ragged batch: tokens (concatenated), lengths per sequence, images (nImages views, concatenated).
struct BatchIn {
  std::vector<int32_t> tokens, mask;
  std::vector<int64_t> offsets;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> image_offsets;  // first image of each sequence
  int64_t n_images = 0;
};
BatchIn read_batch(Args& a, const Napi::CallbackInfo& info, const Config& c, bool with_mask);

// Refuses a batch whose activations would not fit in memory (rather than being OOM-killed later).
void require_memory(Args& a, const Model& m, int64_t rows, bool keep);

std::vector<SeqInput> seq_inputs(const BatchIn& b, const Config& c);
Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v);

}  // namespace medgym::addon::policy
