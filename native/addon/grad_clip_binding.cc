// gradNorm / gradClip (+ Async): thin wrappers over native/cpu/grad_clip.h.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "cpu/grad_clip.h"

namespace medgym::addon {
namespace {

struct Arrays {
  std::vector<float*> ptr;
  std::vector<int64_t> len;
};

std::shared_ptr<Arrays> read_grads(Args& a, bool output) {
  auto list = a.f32_list("grads", {}, output);
  auto g = std::make_shared<Arrays>();
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    if (v.length == 0)
      a.range_error("Expected a non-empty Float32Array for `grads[" + std::to_string(i) +
                    "]` but received length 0 (is its buffer detached?)");
    g->ptr.push_back(v.data);
    g->len.push_back(static_cast<int64_t>(v.length));
  }
  return g;
}

Napi::Value GradNorm(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "gradNorm", async);
  auto g = read_grads(a, false);
  const bool ref = a.boolean("reference", false);
  auto norm = std::make_shared<double>(0.0);
  return a.run(
      async,
      [=] {
        const int64_t count = static_cast<int64_t>(g->ptr.size());
        // The reference has no norm-only form: grad_clip_ref with an infinite max_norm never scales.
        *norm = ref ? grad_clip_ref(g->ptr.data(), g->len.data(), count, std::numeric_limits<double>::infinity()).norm
                    : std::sqrt(grad_sum_squares(g->ptr.data(), g->len.data(), count));
      },
      [=](Napi::Env env) { return Napi::Number::New(env, *norm); });
}

Napi::Value GradClip(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "gradClip", async);
  auto g = read_grads(a, true);
  const double max_norm = a.number("maxNorm", 1e-30, 1e30);
  const bool ref = a.boolean("reference", false);
  auto res = std::make_shared<GradClipResult>();
  return a.run(
      async,
      [=] {
        *res = (ref ? grad_clip_ref : grad_clip)(g->ptr.data(), g->len.data(), static_cast<int64_t>(g->ptr.size()),
                                                 max_norm);
      },
      [=](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("norm", Napi::Number::New(env, res->norm));
        o.Set("scale", Napi::Number::New(env, res->scale));
        o.Set("clipped", Napi::Boolean::New(env, res->clipped));
        o.Set("finite", Napi::Boolean::New(env, res->finite));
        return o;
      });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "gradNorm", GradNorm);
  export_sync_async(env, exports, "gradClip", GradClip);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
