// Generation sessions of the native policy for JS (native/model/generate.h): create, add, append,
// fork, generate, read and release sequences; heavy calls scheduled like the model's (policy_binding.cc).

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/policy_common.h"
#include "model/generate.h"
#include "model/model.h"

namespace medgym::addon {
namespace {

using namespace policy;  // NOLINT: the shared handles, batch helpers and model::Config/Model/Session names


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
  Args a(info, "sessionAdd", async);
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const Config& c = m->cfg;
  Segments seg = read_segments(a, info, c);
  const size_t n = seg.count();
  auto keys = read_keys(a, info, n);
  auto counters = std::make_shared<std::vector<uint64_t>>(read_counters(a, info, n));
  auto toks = seg.tokens;
  auto pix = seg.pixels;
  for (size_t i = 0; i < n; ++i)
    checked(a, [&] { s->check_add((*toks)[i].data(), static_cast<int64_t>((*toks)[i].size()), images_in((*toks)[i], c)); });
  auto busy = acquire(a, m);
  auto ids = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async, [=] {
        auto guard = busy;
        *ids = s->add(*toks, *pix, *keys, *counters);
      },
      [=](Napi::Env env) { return ids_to_js(env, *ids); });
}

// sessionFork({session, id, seeds, steps, promptIndices, sampleIndices}) -> ids: one new sequence per
// key, continuing `id` (its tokens, images and KV cache, shared copy-on-write).
Napi::Value SessionFork(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "sessionFork", async);
  auto s = get_session(a, info);
  auto m = s->model();
  require_fresh(a, *s);
  const int64_t id = a.integer("id", 0, std::numeric_limits<int32_t>::max());
  if (!s->has(id)) a.range_error("unknown or released sequence id " + std::to_string(id) + " (`id`)");
  Napi::Value seeds = a.get("seeds");
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
  Args a(info, "sessionAppend", async);
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
  Args a(info, "sessionGenerate", async);
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
