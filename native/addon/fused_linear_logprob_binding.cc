// fusedLinearLogprob / fusedLinearLogprobBackward / fusedLinearLogprobForwardBackward (+ Async),
// fusedLinearLogprobWorkspaceBytes and fusedLinearLogprobPlan:
// thin wrappers over native/cpu/fused_linear_logprob.h.
#include <cfloat>
#include <cmath>
#include <memory>
#include <string>

#include "addon/args.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/threadpool.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1;  // targets are int32
constexpr int64_t kMaxElems = int64_t(1) << 40;

using Ref = std::shared_ptr<Napi::Reference<Napi::Value>>;

struct Dims {
  int64_t N, d, V, Nd, Vd;
};

Dims read_dims(Args& a) {
  Dims m;
  m.N = a.integer("N", 0, kMaxDim);
  m.d = a.integer("d", 1, kMaxDim);
  m.V = a.integer("V", 1, kMaxDim);
  // Checked here first so that the error names the array (each factor is < 2^31: exact in double).
  if (static_cast<double>(m.N) * m.d > kMaxElems) a.range_error("`h` would be too large (N * d > 2^40)");
  if (static_cast<double>(m.V) * m.d > kMaxElems) a.range_error("`W` would be too large (V * d > 2^40)");
  m.Nd = checked_mul(a, {m.N, m.d});
  m.Vd = checked_mul(a, {m.V, m.d});
  return m;
}

FusedLogprobSplit read_split(Args& a) {
  return static_cast<FusedLogprobSplit>(a.choice("split", {"auto", "rows", "vocab"}, 0));
}

// temperature: a finite float32 > 0 whose reciprocal is finite too (default 1).
float read_temperature(Args& a) { return static_cast<float>(a.number("temperature", FLT_MIN, FLT_MAX, 1.0)); }

View<int32_t> read_targets(Args& a, const Dims& m) {
  auto t = a.i32("targets", m.N);
  for (int64_t i = 0; i < m.N; ++i)
    if (t.data[i] < -1 || t.data[i] >= m.V)
      a.range_error("Expected ids in [-1, " + std::to_string(m.V) + ") (-1 = ignored row) for `targets` but element " +
                    std::to_string(i) + " is " + std::to_string(t.data[i]));
  return t;
}

// Finite values required at the rows that are not ignored (NaN there would silently poison gradients).
void require_finite_active(Args& a, const char* name, View<float> v, View<int32_t> targets) {
  if (!v) return;
  for (size_t i = 0; i < v.length; ++i)
    if (targets.data[i] >= 0 && !std::isfinite(v.data[i]))
      a.range_error("Expected finite values in `" + std::string(name) + "` but element " + std::to_string(i) + " is " +
                    (std::isnan(v.data[i]) ? "NaN" : "infinite"));
}

struct Named {
  const char* name;
  const void* data;
  size_t bytes;
};
template <typename T>
Named named(const char* name, View<T> v) {
  return {name, v.data, v.length * sizeof(T)};
}

// An output must not share memory with an input or another output (results would be wrong).
void require_disjoint(Args& a, std::initializer_list<Named> outputs, std::initializer_list<Named> others) {
  auto overlap = [](const Named& x, const Named& y) {
    if (!x.data || !y.data || !x.bytes || !y.bytes) return false;
    auto xb = reinterpret_cast<uintptr_t>(x.data), yb = reinterpret_cast<uintptr_t>(y.data);
    return xb < yb + y.bytes && yb < xb + x.bytes;
  };
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    for (const Named& x : others)
      if (overlap(*o, x)) a.range_error("`" + std::string(o->name) + "` overlaps the memory of `" + x.name + "`");
    for (auto p = outputs.begin(); p != o; ++p)
      if (overlap(*o, *p)) a.range_error("`" + std::string(o->name) + "` overlaps the memory of `" + p->name + "`");
  }
}

// An optional Float32Array output of length n: the caller's array, else a new one. The field is read
// once: a getter could answer differently the second time.
View<float> output(Args& a, const char* name, int64_t n, Ref* ref) {
  Napi::Value v;
  View<float> view = a.f32_out_optional(name, n, &v);
  if (!v.IsUndefined() && !v.IsNull()) {
    *ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(v));
    return view;
  }
  auto arr = Napi::Float32Array::New(a.env(), static_cast<size_t>(n));
  *ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(static_cast<Napi::Value>(arr)));
  view.length = static_cast<size_t>(n);
  view.data = n ? arr.Data() : nullptr;
  return view;
}

Napi::Value Forward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "fusedLinearLogprob", async);
  Dims m = read_dims(a);
  auto h = a.f32("h", m.Nd);
  auto W = a.f32("W", m.Vd);
  auto targets = read_targets(a, m);
  float tau = read_temperature(a);
  bool ref_impl = a.choice("impl", {"fused", "reference"}, 0) == 1;
  FusedLogprobSplit split = read_split(a);
  Ref logp_ref, ent_ref, lse_ref;
  auto logp = output(a, "logp", m.N, &logp_ref);
  auto entropy = output(a, "entropy", m.N, &ent_ref);
  auto lse = output(a, "lse", m.N, &lse_ref);
  require_disjoint(a, {named("logp", logp), named("entropy", entropy), named("lse", lse)},
                   {named("h", h), named("W", W), named("targets", targets)});
  return a.run(
      async,
      [=] {
        if (ref_impl)
          fused_linear_logprob_forward_ref(h.data, W.data, targets.data, m.N, m.d, m.V, tau, logp.data,
                                           entropy.data, lse.data);
        else
          fused_linear_logprob_forward(h.data, W.data, targets.data, m.N, m.d, m.V, tau, logp.data, entropy.data,
                                       lse.data, split);
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("logp", logp_ref->Value());
        o.Set("entropy", ent_ref->Value());
        o.Set("lse", lse_ref->Value());
        return o;
      });
}

Napi::Value Backward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "fusedLinearLogprobBackward", async);
  Dims m = read_dims(a);
  auto h = a.f32("h", m.Nd);
  auto W = a.f32("W", m.Vd);
  auto targets = read_targets(a, m);
  auto lse = a.f32("lse", m.N);
  auto entropy = a.f32_optional("entropy", m.N);
  auto dlogp = a.f32_optional("dlogp", m.N);
  auto dentropy = a.f32_optional("dentropy", m.N);
  float tau = read_temperature(a);
  auto dh = a.f32_out("dh", m.Nd);
  auto dW = a.f32_out("dW", m.Vd);
  bool acc = a.boolean("accumulateDh", false);
  bool ref_impl = a.choice("impl", {"fused", "reference"}, 0) == 1;
  FusedLogprobSplit split = read_split(a);
  require_finite_active(a, "lse", lse, targets);
  require_finite_active(a, "entropy", entropy, targets);
  require_finite_active(a, "dlogp", dlogp, targets);
  require_finite_active(a, "dentropy", dentropy, targets);
  require_disjoint(a, {named("dh", dh), named("dW", dW)},
                   {named("h", h), named("W", W), named("targets", targets), named("lse", lse),
                    named("entropy", entropy), named("dlogp", dlogp), named("dentropy", dentropy)});
  return a.run(async, [=] {
    if (ref_impl)
      fused_linear_logprob_backward_ref(h.data, W.data, targets.data, dlogp.data, dentropy.data, m.N, m.d, m.V, tau,
                                        dh.data, dW.data, acc);
    else
      fused_linear_logprob_backward(h.data, W.data, targets.data, lse.data, entropy.data, dlogp.data,
                                    dentropy.data, m.N, m.d, m.V, tau, dh.data, dW.data, acc, split);
  });
}

Napi::Value ForwardBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "fusedLinearLogprobForwardBackward", async);
  Dims m = read_dims(a);
  auto h = a.f32("h", m.Nd);
  auto W = a.f32("W", m.Vd);
  auto targets = read_targets(a, m);
  auto dlogp = a.f32_optional("dlogp", m.N);
  auto dentropy = a.f32_optional("dentropy", m.N);
  float tau = read_temperature(a);
  auto dh = a.f32_out("dh", m.Nd);
  auto dW = a.f32_out("dW", m.Vd);
  bool acc = a.boolean("accumulateDh", false);
  FusedLogprobSplit split = read_split(a);
  Ref logp_ref, ent_ref, lse_ref;
  auto logp = output(a, "logp", m.N, &logp_ref);
  auto entropy = output(a, "entropy", m.N, &ent_ref);
  auto lse = output(a, "lse", m.N, &lse_ref);
  require_finite_active(a, "dlogp", dlogp, targets);
  require_finite_active(a, "dentropy", dentropy, targets);
  require_disjoint(a, {named("dh", dh), named("dW", dW), named("logp", logp), named("entropy", entropy), named("lse", lse)},
                   {named("h", h), named("W", W), named("targets", targets), named("dlogp", dlogp),
                    named("dentropy", dentropy)});
  return a.run(
      async,
      [=] {
        fused_linear_logprob_forward_backward(h.data, W.data, targets.data, m.N, m.d, m.V, tau, dlogp.data,
                                              dentropy.data, logp.data, entropy.data, lse.data, dh.data, dW.data,
                                              acc, split);
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("logp", logp_ref->Value());
        o.Set("entropy", ent_ref->Value());
        o.Set("lse", lse_ref->Value());
        return o;
      });
}

Napi::Value WorkspaceBytes(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobWorkspaceBytes");
  Dims m = read_dims(a);
  int64_t threads = a.integer("threads", 1, 1024, num_threads());
  int pass = a.choice("pass", {"forward", "backward", "forwardBackward"}, 1);
  bool recompute = a.boolean("recomputeEntropy", false);
  FusedLogprobSplit split = read_split(a);
  int64_t bytes =
      pass == 2 ? fused_linear_logprob_forward_backward_workspace_bytes(m.N, m.d, m.V, static_cast<int>(threads), split)
                : fused_linear_logprob_workspace_bytes(m.N, m.d, m.V, static_cast<int>(threads), pass == 1, recompute,
                                                       split);
  return Napi::Number::New(a.env(), static_cast<double>(bytes));
}

Napi::Value Plan(const Napi::CallbackInfo& info) {
  Args a(info, "fusedLinearLogprobPlan");
  Dims m = read_dims(a);
  int64_t threads = a.integer("threads", 1, 1024, num_threads());
  FusedLogprobSplit split = read_split(a);
  FusedLogprobPlanInfo p = fused_linear_logprob_plan(m.N, m.d, m.V, static_cast<int>(threads), split);
  Napi::Object o = Napi::Object::New(a.env());
  o.Set("split", p.split == FusedLogprobSplit::Rows ? "rows" : "vocab");
  o.Set("rows", static_cast<double>(p.rows));
  o.Set("chunk", static_cast<double>(p.chunk));
  o.Set("threads", p.threads);
  o.Set("combinedRows", static_cast<double>(p.combined_rows));
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "fusedLinearLogprob", Forward);
  export_sync_async(env, exports, "fusedLinearLogprobBackward", Backward);
  export_sync_async(env, exports, "fusedLinearLogprobForwardBackward", ForwardBackward);
  exports.Set("fusedLinearLogprobPlan", Napi::Function::New(env, Plan, "fusedLinearLogprobPlan"));
  exports.Set("fusedLinearLogprobWorkspaceBytes",
              Napi::Function::New(env, WorkspaceBytes, "fusedLinearLogprobWorkspaceBytes"));
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
