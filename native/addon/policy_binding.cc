// The native policy (native/model) for JS: a model handle (a type-tagged external) and thin entry
// points that unwrap + validate their options, copy the inputs into native memory and schedule the
// work (sync or Promise). One heavy op per model at a time: a second one while the first runs throws
// (src/policy queues calls so that this never happens). Generation sessions: session_binding.cc.

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/policy_common.h"
#include "addon/policy_device.h"
#include "addon/prefix_args.h"
#include "model/accelerator.h"
#include "model/generate.h"
#include "model/model.h"

namespace medgym::addon {
namespace {

using namespace policy;  // NOLINT: the shared handles, batch helpers and model::Config/Model/Session names


// ---- model ----------------------------------------------------------------------------------------

// The SPEC §1 config fields of `policyCreate` / `policyConfigLayout`, range-checked and validated.
Config read_config(Args& a) {
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
  checked(a, [&] { c.validate(); });
  return c;
}

// Refuses a config whose weights and gradients (8 bytes a parameter) exceed `maxParams` or 3/4 of
// RAM, before anything is allocated: a config is untrusted input (a checkpoint header names it).
void require_param_budget(Args& a, const model::Layout& lay) {
  const double max_params = a.number("maxParams", 1, 9007199254740991.0, double(int64_t(1) << 31));
  const double need = 8.0 * static_cast<double>(lay.total);
  const double phys = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  auto gib = [](double b) { return std::to_string(b / double(int64_t(1) << 30)).substr(0, 5) + " GiB"; };
  if (static_cast<double>(lay.total) > max_params)
    a.range_error("the config has " + std::to_string(lay.total) + " parameters, more than `maxParams` " +
                  std::to_string(static_cast<int64_t>(max_params)));
  if (phys > 0 && need > 0.75 * phys)
    a.range_error("the config has " + std::to_string(lay.total) + " parameters whose weights and gradients need " + gib(need) +
                  ", more than 3/4 of this machine's " + gib(phys) + " of RAM");
}

Napi::Array layout_to_js(Napi::Env env, const model::Layout& lay) {
  auto arr = Napi::Array::New(env, lay.tensors.size());
  for (size_t i = 0; i < lay.tensors.size(); ++i) {
    const auto& t = lay.tensors[i];
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

Napi::Value Create(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "policyCreate", async);
  const Config c = read_config(a);
  require_param_budget(a, model::build_layout(c));
  const double seed = a.number("seed", 0, 9007199254740991.0, 0);
  const bool init = a.boolean("init", true);
  const bool cuda = a.choice("device", {"cpu", "cuda"}, 0) == 1;
  const bool bf16 = a.choice("dtype", {"fp32", "bf16"}, 0) == 1;
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
  return layout_to_js(info.Env(), get_model(a, info)->layout);
}

// The tensor table a config implies, without building the model: checkpoint loading compares a
// file's tensors with it (and `maxParams` with its size) before allocating anything.
Napi::Value ConfigLayout(const Napi::CallbackInfo& info) {
  Args a(info, "policyConfigLayout");
  const model::Layout lay = model::build_layout(read_config(a));
  require_param_budget(a, lay);
  return layout_to_js(info.Env(), lay);
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
  Args a(info, "policyForward", async);
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
  Args a(info, "policyBackward", async);
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
  Args a(info, "policyCrossEntropy", async);
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
  Args a(info, "policyStep", async);
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
  Args a(info, "policyZeroGrad", async);
  auto m = get_model(a, info);
  auto busy = acquire(a, m);
  return a.run(async, [=] {
    auto guard = busy;
    m->zero_grad();
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "policyCreate", Create);
  exports.Set("policyLayout", Napi::Function::New(env, Layout, "policyLayout"));
  exports.Set("policyConfigLayout", Napi::Function::New(env, ConfigLayout, "policyConfigLayout"));
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
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
