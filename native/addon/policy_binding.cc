// The native policy (native/model) for JS: handles (type-tagged externals) for a model and its
// generation sessions, and thin entry points that unwrap + validate their options, copy the inputs
// into native memory and schedule the work (sync or Promise). One heavy op per model at a time: a
// second one while the first runs throws (src/policy queues calls so that this never happens).
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/args.h"
#include "addon/policy_device.h"
#include "addon/prefix_args.h"
#include "model/accelerator.h"
#include "model/generate.h"
#include "model/model.h"

namespace medgym::addon {
namespace {

using model::Config;
using model::Model;
using model::SeqInput;
using model::Session;

constexpr napi_type_tag kModelTag = {0x6d656467796d4d6full, 0x64656c0000000001ull};
constexpr napi_type_tag kSessionTag = {0x6d656467796d5365ull, 0x7373696f6e000001ull};

struct ModelHandle {
  std::shared_ptr<Model> m;
};
struct SessionHandle {
  std::shared_ptr<Session> s;
};

Napi::Object options(const Napi::CallbackInfo& info) { return info[0].As<Napi::Object>(); }

template <typename H>
H* unwrap(Args& a, const Napi::CallbackInfo& info, const char* name, const napi_type_tag& tag, const char* what) {
  Napi::Value v = options(info).Get(name);
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &tag, &ok);
  if (!ok) a.type_error(std::string("Expected a ") + what + " handle for `" + name + "`");
  return v.As<Napi::External<H>>().Data();
}

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

// Marks the model busy for one heavy op; the returned guard (captured by the work) frees it.
struct Busy {
  explicit Busy(std::shared_ptr<Model> model) : m(std::move(model)) {}
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;
  ~Busy() { m->busy = false; }
  std::shared_ptr<Model> m;
};
std::shared_ptr<Busy> acquire(Args& a, const std::shared_ptr<Model>& m) {
  if (m->busy.exchange(true))
    throw Napi::Error::New(a.env(), std::string(a.fn()) + ": the model is busy with another operation (await it first)");
  return std::make_shared<Busy>(m);
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

std::vector<uint8_t> read_u8(Args& a, const Napi::CallbackInfo& info, const char* name, int64_t length) {
  Napi::Value v = options(info).Get(name);
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
  Napi::Value v = options(info).Get(name);
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
  return out;
}

std::vector<std::string> read_strings(Args& a, const Napi::CallbackInfo& info, const char* name) {
  Napi::Value v = options(info).Get(name);
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
  return out;
}

// A ragged batch: tokens (concatenated), lengths per sequence, images (nImages views, concatenated).
struct BatchIn {
  std::vector<int32_t> tokens, mask;
  std::vector<int64_t> offsets;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> image_offsets;  // first image of each sequence
  int64_t n_images = 0;
};

BatchIn read_batch(Args& a, const Napi::CallbackInfo& info, const Config& c, bool with_mask) {
  BatchIn b;
  auto lengths = a.i32("lengths", -1);
  if (lengths.length < 1) a.range_error("Expected at least one sequence in `lengths`");
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

// ---- model ----------------------------------------------------------------------------------------

Napi::Value Create(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyCreate");
  Config c;
  c.V = a.integer("vocabSize", 1, 1 << 20);
  c.d = a.integer("dModel", 1, 16384);
  c.L = a.integer("nLayer", 1, 256);
  c.H = a.integer("nHead", 1, 16384);
  c.T = a.integer("maxSeq", 1, 1 << 20);
  c.P = a.integer("patch", 1, 256);
  c.S = a.integer("imageSize", 1, 4096);
  c.C = a.integer("channels", 1, 3);
  c.image_id = a.integer("imageId", 0, (1 << 20) - 1);
  const double seed = a.number("seed", 0, 9007199254740991.0, 0);
  const bool init = a.boolean("init", true);
  const bool cuda = a.choice("device", {"cpu", "cuda"}, 0) == 1;
  const bool bf16 = a.choice("dtype", {"fp32", "bf16"}, 0) == 1;
  checked(a, [&] { c.validate(); });
  if (bf16 && !cuda) a.range_error("`dtype` 'bf16' needs `device` 'cuda' (the CPU policy runs in fp32)");
  if (cuda) {  // refuse now, with the runtime's reason, rather than from the worker
    const CudaProbe p = probe_cuda();
    if (!p.usable) throw Napi::Error::New(a.env(), std::string(a.fn()) + ": device 'cuda': " + p.reason);
  }
  auto holder = std::make_shared<std::shared_ptr<Model>>();
  return a.run(
      async,
      [=] {
        auto m = std::make_shared<Model>(c, static_cast<uint64_t>(seed), init);
        if (cuda) use_cuda(*m, bf16);
        *holder = std::move(m);
      },
      [=](Napi::Env env) -> Napi::Value {
        auto* h = new ModelHandle{*holder};
        auto ext = Napi::External<ModelHandle>::New(env, h, [](Napi::Env, ModelHandle* p) { delete p; });
        napi_type_tag_object(env, ext, &kModelTag);
        return ext;
      });
}

Napi::Value Layout(const Napi::CallbackInfo& info) {
  Args a(info, "policyLayout");
  auto m = get_model(a, info);
  Napi::Env env = info.Env();
  auto arr = Napi::Array::New(env, m->layout.tensors.size());
  for (size_t i = 0; i < m->layout.tensors.size(); ++i) {
    const auto& t = m->layout.tensors[i];
    auto o = Napi::Object::New(env);
    o.Set("name", t.name);
    auto shape = Napi::Array::New(env, t.shape.size());
    for (size_t k = 0; k < t.shape.size(); ++k) shape.Set(static_cast<uint32_t>(k), static_cast<double>(t.shape[k]));
    o.Set("shape", shape);
    o.Set("offset", static_cast<double>(t.offset));
    o.Set("size", static_cast<double>(t.size));
    o.Set("decay", t.decay);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

std::vector<float>* buffer(Args& a, Model& m, bool for_write) {
  int which = a.choice("which", {"params", "grads", "m", "v"});
  if (for_write && which == 0) ++m.weights_version;
  if (m.accel) {  // on the device: read()/write() below go through the accelerator
    if (which >= 2 && !for_write && !m.accel->has_moments()) a.range_error("no optimizer state yet (`which`)");
    return nullptr;
  }
  if (which >= 2 && m.m.empty()) {
    if (!for_write) a.range_error("no optimizer state yet (`which`)");
    m.m.assign(m.layout.total, 0.0f), m.v.assign(m.layout.total, 0.0f);
  }
  switch (which) {
    case 0: return &m.params;
    case 1: return &m.grads;
    case 2: return &m.m;
    default: return &m.v;
  }
}

// policyRead({model, which, offset, size}) -> Float32Array copy
Napi::Value Read(const Napi::CallbackInfo& info) {
  Args a(info, "policyRead");
  auto m = get_model(a, info);
  auto busy = acquire(a, m);
  std::vector<float>* buf = buffer(a, *m, false);
  const int64_t total = buf ? static_cast<int64_t>(buf->size()) : m->layout.total;
  int64_t off = a.integer("offset", 0, total, 0);
  int64_t size = a.integer("size", 0, total - off, total - off);
  auto out = Napi::Float32Array::New(info.Env(), size);
  if (!buf) m->accel->read(static_cast<model::FlatBuffer>(a.choice("which", {"params", "grads", "m", "v"})), off, size,
                           out.Data());
  else if (size) std::memcpy(out.Data(), buf->data() + off, size * sizeof(float));
  return out;
}

// policyWrite({model, which, offset, data})
Napi::Value Write(const Napi::CallbackInfo& info) {
  Args a(info, "policyWrite");
  auto m = get_model(a, info);
  auto busy = acquire(a, m);
  std::vector<float>* buf = buffer(a, *m, true);
  const int64_t total = buf ? static_cast<int64_t>(buf->size()) : m->layout.total;
  int64_t off = a.integer("offset", 0, total, 0);
  auto data = a.f32("data", -1);
  if (off + static_cast<int64_t>(data.length) > total)
    a.range_error("`data` of length " + std::to_string(data.length) + " at offset " + std::to_string(off) +
                  " runs past the buffer of " + std::to_string(total));
  a.require_finite("data", data);
  if (!buf) m->accel->write(static_cast<model::FlatBuffer>(a.choice("which", {"params", "grads", "m", "v"})), off,
                            static_cast<int64_t>(data.length), data.data);
  else if (data.length) std::memcpy(buf->data() + off, data.data, data.length * sizeof(float));
  return info.Env().Undefined();
}

Napi::Value GetStep(const Napi::CallbackInfo& info) {
  Args a(info, "policyGetStep");
  return Napi::Number::New(info.Env(), static_cast<double>(get_model(a, info)->step_count));
}
Napi::Value SetStep(const Napi::CallbackInfo& info) {
  Args a(info, "policySetStep");
  auto m = get_model(a, info);
  auto busy = acquire(a, m);
  m->step_count = a.integer("step", 0, int64_t(1) << 52);
  return info.Env().Undefined();
}

// policyDevice({model}) -> {device: 'cpu' | 'cuda', dtype: 'fp32' | 'bf16', name}
Napi::Value Device(const Napi::CallbackInfo& info) {
  Args a(info, "policyDevice");
  auto m = get_model(a, info);
  auto o = Napi::Object::New(info.Env());
  o.Set("device", m->accel ? "cuda" : "cpu");
  o.Set("dtype", m->accel && m->accel->bf16() ? "bf16" : "fp32");
  o.Set("name", device_description(*m));
  return o;
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Args a(info, "policyDispose");
  auto* h = unwrap<ModelHandle>(a, info, "model", kModelTag, "policy model");
  h->m.reset();  // an op in flight holds its own reference: the memory goes when it finishes
  return info.Env().Undefined();
}

Napi::Value Forward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyForward");
  auto m = get_model(a, info);
  auto b = std::make_shared<BatchIn>(read_batch(a, info, m->cfg, true));
  const float tau = static_cast<float>(a.number("temperature", 1e-6, 1e6, 1.0));
  const bool want_entropy = a.boolean("entropy", true);
  const bool keep = a.boolean("requireGrad", false);
  auto seqs = std::make_shared<std::vector<SeqInput>>(seq_inputs(*b, m->cfg));
  checked(a, [&] { m->validate(*seqs, b->n_images); });
  auto groups = std::make_shared<std::vector<model::PrefixGroup>>(read_prefix_groups(a, seqs->size()));
  checked(a, [&] { m->validate_groups(*seqs, *groups); });
  // On a GPU, shared prefixes are computed unshared (model/accelerator.h).
  const int64_t rows = m->packed_rows(*seqs, m->accel ? std::vector<model::PrefixGroup>{} : *groups);
  require_memory(a, *m, rows, keep);
  auto busy = acquire(a, m);
  const size_t total = b->tokens.size();
  auto logp = std::make_shared<std::vector<float>>(total, 0.0f);
  auto ent = std::make_shared<std::vector<float>>(total, 0.0f);
  auto scored = std::make_shared<int64_t>(0);
  return a.run(
      async,
      [=] {
        auto guard = busy;
        *scored = m->forward(*seqs, tau, want_entropy, keep, logp->data(), ent->data(), *groups);
        (void)b;
      },
      [=](Napi::Env env) {
        auto o = Napi::Object::New(env);
        o.Set("logp", to_js(env, *logp));
        o.Set("entropy", to_js(env, *ent));
        o.Set("scored", static_cast<double>(*scored));
        o.Set("rows", static_cast<double>(rows));
        return o;
      });
}

Napi::Value Backward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyBackward");
  auto m = get_model(a, info);
  if (!m->has_saved()) a.range_error("no saved activations: call forward with `requireGrad: true` first");
  const int64_t total = a.integer("total", 0, int64_t(1) << 40);
  auto dl = a.f32("dlogp", total);
  a.require_finite("dlogp", dl);
  auto de = a.f32_optional("dentropy", total);
  if (de) a.require_finite("dentropy", de);
  auto dlogp = std::make_shared<std::vector<float>>(dl.data, dl.data + total);
  auto dent = std::make_shared<std::vector<float>>();
  if (de) dent->assign(de.data, de.data + total);
  auto busy = acquire(a, m);
  return a.run(async, [=] {
    auto guard = busy;
    m->backward(dlogp->data(), dent->empty() ? nullptr : dent->data());
  });
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyCrossEntropy");
  auto m = get_model(a, info);
  auto b = std::make_shared<BatchIn>(read_batch(a, info, m->cfg, true));
  const bool mean = a.choice("reduction", {"mean", "sum"}, 0) == 0;
  const double scale = a.number("scale", -1e30, 1e30, 1.0);
  auto seqs = std::make_shared<std::vector<SeqInput>>(seq_inputs(*b, m->cfg));
  checked(a, [&] { m->validate(*seqs, b->n_images); });
  require_memory(a, *m, m->packed_rows(*seqs, {}), true);
  auto busy = acquire(a, m);
  auto res = std::make_shared<std::pair<double, int64_t>>(0.0, 0);
  return a.run(
      async,
      [=] {
        auto guard = busy;
        res->first = m->cross_entropy(*seqs, mean, scale, &res->second);
        (void)b;
      },
      [=](Napi::Env env) {
        auto o = Napi::Object::New(env);
        o.Set("loss", res->first);
        o.Set("count", static_cast<double>(res->second));
        return o;
      });
}

Napi::Value Step(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyStep");
  auto m = get_model(a, info);
  model::AdamHyper hp;
  hp.lr = a.number("lr", 0, 1e3, 3e-4);
  hp.beta1 = a.number("beta1", 0, 0.999999999, 0.9);
  hp.beta2 = a.number("beta2", 0, 0.999999999, 0.999);
  hp.eps = a.number("eps", 0, 1, 1e-8);
  hp.weight_decay = a.number("weightDecay", 0, 1e3, 0.01);
  hp.max_grad_norm = a.number("maxGradNorm", 0, 1e300, 1.0);
  hp.zero_grad = a.boolean("zeroGrad", true);
  auto busy = acquire(a, m);
  auto res = std::make_shared<model::StepInfo>();
  return a.run(
      async, [=] {
        auto guard = busy;
        *res = m->step(hp);
      },
      [=](Napi::Env env) {
        auto o = Napi::Object::New(env);
        o.Set("step", static_cast<double>(res->step));
        o.Set("gradNorm", res->grad_norm);
        o.Set("clipped", res->clipped);
        o.Set("finite", res->finite);
        return o;
      });
}

Napi::Value ZeroGrad(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyZeroGrad");
  auto m = get_model(a, info);
  auto busy = acquire(a, m);
  return a.run(async, [=] {
    auto guard = busy;
    m->zero_grad();
  });
}

// ---- sessions -------------------------------------------------------------------------------------

Napi::Value SessionCreate(const Napi::CallbackInfo& info) {
  Args a(info, "sessionCreate");
  auto m = get_model(a, info);
  const bool kv = a.boolean("kvCache", true);
  const double seed = a.number("seed", 0, 9007199254740991.0, 0);
  auto specials = read_strings(a, info, "specials");
  auto* h = new SessionHandle{std::make_shared<Session>(m, kv, static_cast<uint64_t>(seed), specials)};
  auto ext = Napi::External<SessionHandle>::New(info.Env(), h, [](Napi::Env, SessionHandle* p) { delete p; });
  napi_type_tag_object(info.Env(), ext, &kSessionTag);
  return ext;
}

std::vector<std::vector<int32_t>> split_tokens(const BatchIn& b) {
  std::vector<std::vector<int32_t>> out;
  for (size_t s = 0; s + 1 < b.offsets.size(); ++s) out.emplace_back(b.tokens.begin() + b.offsets[s], b.tokens.begin() + b.offsets[s + 1]);
  return out;
}
std::vector<std::vector<uint8_t>> split_pixels(const BatchIn& b, const Config& c) {
  std::vector<std::vector<uint8_t>> out;
  for (size_t s = 0; s < b.image_offsets.size(); ++s) {
    int64_t i0 = b.image_offsets[s], i1 = s + 1 < b.image_offsets.size() ? b.image_offsets[s + 1] : b.n_images;
    out.emplace_back(b.pixels.begin() + i0 * c.image_bytes(), b.pixels.begin() + i1 * c.image_bytes());
  }
  return out;
}
int64_t images_in(const std::vector<int32_t>& t, const Config& c) {
  int64_t n = 0;
  for (int32_t id : t) n += id == c.image_id;
  return n;
}

// The per-sequence token and pixel segments of a session call (add or append), checked to hold one
// view per <|image|>.
struct Segments {
  std::shared_ptr<std::vector<std::vector<int32_t>>> tokens;
  std::shared_ptr<std::vector<std::vector<uint8_t>>> pixels;
  size_t count() const { return tokens->size(); }
};

Segments read_segments(Args& a, const Napi::CallbackInfo& info, const Config& c) {
  BatchIn b = read_batch(a, info, c, false);
  if (images_in(b.tokens, c) != b.n_images)
    a.range_error("Expected one image per <|image|> token: `tokens` hold " + std::to_string(images_in(b.tokens, c)) +
                  " but `images` has " + std::to_string(b.n_images));
  return {std::make_shared<std::vector<std::vector<int32_t>>>(split_tokens(b)),
          std::make_shared<std::vector<std::vector<uint8_t>>>(split_pixels(b, c))};
}

// The four stream-key arrays of n sequences (SPEC §7: seed, step, prompt index, sample index).
std::shared_ptr<std::vector<std::array<uint64_t, 4>>> read_keys(Args& a, const Napi::CallbackInfo& info, size_t n) {
  auto seeds = read_numbers(a, info, "seeds", n, 9007199254740991.0);
  auto steps = read_numbers(a, info, "steps", n, 9007199254740991.0);
  auto prompts = read_numbers(a, info, "promptIndices", n, 9007199254740991.0);
  auto samples = read_numbers(a, info, "sampleIndices", n, 9007199254740991.0);
  auto keys = std::make_shared<std::vector<std::array<uint64_t, 4>>>();
  for (size_t i = 0; i < n; ++i)
    keys->push_back({static_cast<uint64_t>(seeds[i]), static_cast<uint64_t>(steps[i]), static_cast<uint64_t>(prompts[i]),
                     static_cast<uint64_t>(samples[i])});
  return keys;
}

Napi::Value ids_to_js(Napi::Env env, const std::vector<int64_t>& ids) {
  auto arr = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) arr.Set(static_cast<uint32_t>(i), static_cast<double>(ids[i]));
  return arr;
}

Napi::Value SessionAdd(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "sessionAdd");
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const Config& c = m->cfg;
  Segments seg = read_segments(a, info, c);
  const size_t n = seg.count();
  auto keys = read_keys(a, info, n);
  auto toks = seg.tokens;
  auto pix = seg.pixels;
  for (size_t i = 0; i < n; ++i)
    checked(a, [&] { s->check_add((*toks)[i].data(), static_cast<int64_t>((*toks)[i].size()), images_in((*toks)[i], c)); });
  auto busy = acquire(a, m);
  auto ids = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async, [=] {
        auto guard = busy;
        *ids = s->add(*toks, *pix, *keys);
      },
      [=](Napi::Env env) { return ids_to_js(env, *ids); });
}

// sessionFork({session, id, seeds, steps, promptIndices, sampleIndices}) -> ids: one new sequence per
// key, continuing `id` (its tokens, images and KV cache, shared copy-on-write).
Napi::Value SessionFork(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "sessionFork");
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const int64_t id = a.integer("id", 0, std::numeric_limits<int32_t>::max());
  if (!s->has(id)) a.range_error("unknown or released sequence id " + std::to_string(id) + " (`id`)");
  Napi::Value seeds = options(info).Get("seeds");
  if (!seeds.IsArray()) a.type_error("Expected an Array of integers for `seeds`");
  const size_t n = seeds.As<Napi::Array>().Length();
  if (n < 1 || n > 4096) a.range_error("Expected 1 to 4096 entries for `seeds` (one per new sequence) but received " + std::to_string(n));
  auto keys = read_keys(a, info, n);
  auto busy = acquire(a, m);
  auto ids = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async, [=] {
        auto guard = busy;
        *ids = s->fork(id, *keys);
      },
      [=](Napi::Env env) { return ids_to_js(env, *ids); });
}

std::vector<int64_t> read_ids(Args& a, size_t expect) {
  auto v = a.i32("ids", expect == 0 ? -1 : static_cast<int64_t>(expect));
  std::vector<int64_t> ids(v.data, v.data + v.length);
  return ids;
}

Napi::Value SessionAppend(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "sessionAppend");
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const Config& c = m->cfg;
  Segments seg = read_segments(a, info, c);
  const size_t n = seg.count();
  auto ids = std::make_shared<std::vector<int64_t>>(read_ids(a, n));
  checked(a, [&] { s->check_ids(*ids, true); });
  auto toks = seg.tokens;
  auto pix = seg.pixels;
  for (size_t i = 0; i < n; ++i)
    checked(a, [&] {
      s->check_append((*ids)[i], (*toks)[i].data(), static_cast<int64_t>((*toks)[i].size()), images_in((*toks)[i], c));
    });
  auto busy = acquire(a, m);
  return a.run(async, [=] {
    auto guard = busy;
    s->append(*ids, *toks, *pix);
  });
}

Napi::Value SessionGenerate(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "sessionGenerate");
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const Config& c = m->cfg;
  auto ids = std::make_shared<std::vector<int64_t>>(read_ids(a, 0));
  checked(a, [&] { s->check_ids(*ids, true); });
  auto gp = std::make_shared<model::GenerateParams>();
  gp->max_new_tokens = a.integer("maxNewTokens", 0, int64_t(1) << 30, 256);
  gp->temperature = a.number("temperature", 0, 1e6, 1.0);
  if (gp->temperature > 0 && gp->temperature < 1e-6) a.range_error("Expected `temperature` 0 (greedy) or >= 1e-6");
  gp->top_p = a.number("topP", 0, 1, 1.0);
  if (gp->top_p <= 0) a.range_error("Expected `topP` in (0, 1]");
  auto read_idset = [&](const char* name, std::vector<uint8_t>& out) {
    auto v = a.i32_optional(name, -1);
    if (!v) return;
    out.assign(c.V, 0);
    for (size_t i = 0; i < v.length; ++i) {
      if (v.data[i] < 0 || v.data[i] >= c.V)
        a.range_error("Expected token ids in [0, " + std::to_string(c.V) + ") for `" + name + "` but element " +
                      std::to_string(i) + " is " + std::to_string(v.data[i]));
      out[v.data[i]] = 1;
    }
  };
  read_idset("stopTokens", gp->stop);
  read_idset("bannedTokens", gp->banned);
  gp->stop_strings = read_strings(a, info, "stopStrings");
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<model::GenerateOut>>();
  return a.run(
      async, [=] {
        auto guard = busy;
        *out = s->generate(*ids, *gp);
      },
      [=](Napi::Env env) {
        static const char* reasons[] = {"stop_token", "stop_string", "max_new_tokens", "max_seq"};
        auto arr = Napi::Array::New(env, out->size());
        for (size_t i = 0; i < out->size(); ++i) {
          const auto& g = (*out)[i];
          auto o = Napi::Object::New(env);
          o.Set("id", static_cast<double>(g.id));
          auto t = Napi::Int32Array::New(env, g.tokens.size());
          if (!g.tokens.empty()) std::memcpy(t.Data(), g.tokens.data(), g.tokens.size() * sizeof(int32_t));
          o.Set("tokens", t);
          o.Set("logp", to_js(env, g.logp));
          o.Set("finishReason", reasons[static_cast<int>(g.finish)]);
          arr.Set(static_cast<uint32_t>(i), o);
        }
        return arr;
      });
}

Napi::Value SessionTokens(const Napi::CallbackInfo& info) {
  Args a(info, "sessionTokens");
  auto s = get_session(a, info);
  auto busy = acquire(a, s->model());
  auto ids = read_ids(a, 1);
  checked(a, [&] { s->check_ids(ids, true); });
  const auto& t = s->tokens(ids[0]);
  auto out = Napi::Int32Array::New(info.Env(), t.size());
  if (!t.empty()) std::memcpy(out.Data(), t.data(), t.size() * sizeof(int32_t));
  return out;
}

Napi::Value SessionRelease(const Napi::CallbackInfo& info) {
  Args a(info, "sessionRelease");
  auto s = get_session(a, info);
  auto busy = acquire(a, s->model());
  auto ids = read_ids(a, 0);
  checked(a, [&] { s->check_ids(ids, true); });
  for (int64_t id : ids) s->release(id);
  return info.Env().Undefined();
}

Napi::Value SessionDispose(const Napi::CallbackInfo& info) {
  Args a(info, "sessionDispose");
  auto* h = unwrap<SessionHandle>(a, info, "session", kSessionTag, "generation session");
  h->s.reset();  // an op in flight holds its own reference
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "policyCreate", Create);
  exports.Set("policyLayout", Napi::Function::New(env, Layout, "policyLayout"));
  exports.Set("policyRead", Napi::Function::New(env, Read, "policyRead"));
  exports.Set("policyWrite", Napi::Function::New(env, Write, "policyWrite"));
  exports.Set("policyGetStep", Napi::Function::New(env, GetStep, "policyGetStep"));
  exports.Set("policySetStep", Napi::Function::New(env, SetStep, "policySetStep"));
  exports.Set("policyDispose", Napi::Function::New(env, Dispose, "policyDispose"));
  exports.Set("policyDevice", Napi::Function::New(env, Device, "policyDevice"));
  export_sync_async(env, exports, "policyForward", Forward);
  export_sync_async(env, exports, "policyBackward", Backward);
  export_sync_async(env, exports, "policyCrossEntropy", CrossEntropy);
  export_sync_async(env, exports, "policyStep", Step);
  export_sync_async(env, exports, "policyZeroGrad", ZeroGrad);
  exports.Set("sessionCreate", Napi::Function::New(env, SessionCreate, "sessionCreate"));
  export_sync_async(env, exports, "sessionAdd", SessionAdd);
  export_sync_async(env, exports, "sessionAppend", SessionAppend);
  export_sync_async(env, exports, "sessionFork", SessionFork);
  export_sync_async(env, exports, "sessionGenerate", SessionGenerate);
  exports.Set("sessionTokens", Napi::Function::New(env, SessionTokens, "sessionTokens"));
  exports.Set("sessionRelease", Napi::Function::New(env, SessionRelease, "sessionRelease"));
  exports.Set("sessionDispose", Napi::Function::New(env, SessionDispose, "sessionDispose"));
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
