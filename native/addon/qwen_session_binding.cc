// Qwen generation sessions for JS (native/model/qwen/session.h): a session handle over a model, its
// sequences added (prefilled), appended to (tool results with new images), forked, generated and
// released; KV caches kept between calls. Heavy calls are sync or async, one at a time per model.
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/policy_common.h"
#include "addon/qwen_js.h"
#include "model/rng.h"

namespace medgym::addon {
namespace {

using namespace qwen_js;  // NOLINT: the Qwen bindings' shared helpers
using policy::acquire;

// ---- sessions -----------------------------------------------------------------------------------------

std::shared_ptr<qwen::Session> get_session(Args& a) {
  SessionHandle* h = tagged_handle<SessionHandle>(a, "session", kQwenSessionTag, "qwen session");
  if (!h->s) a.type_error("the qwen session was disposed (`session`)");
  if (!h->s->fresh())
    throw Napi::Error::New(a.env(), std::string(a.fn()) + ": the model's weights changed since this session was created (its KV caches are stale): create a new session (`session`)");
  return h->s;
}

void require_ids(Args& a, const qwen::Session& s, const View<int32_t>& ids, bool distinct) {
  if (ids.length == 0 || ids.length > 65536) a.range_error("Expected 1 to 65536 sequence handles in `ids`");
  for (size_t i = 0; i < ids.length; ++i) {
    if (!s.has(ids.data[i])) a.range_error("`ids` entry " + std::to_string(i) + " (" + std::to_string(ids.data[i]) + ") is not a live sequence of this session");
    for (size_t j = 0; distinct && j < i; ++j)
      if (ids.data[j] == ids.data[i]) a.range_error("`ids` holds " + std::to_string(ids.data[i]) + " twice");
  }
}

// SPEC §7 stream keys from `seeds`, `steps`, `promptIndices`, `sampleIndices` (n entries each).
std::vector<uint64_t> read_keys(Args& a, const Napi::CallbackInfo& info, size_t n) {
  const double hi = 9007199254740991.0;
  auto seeds = policy::read_numbers(a, info, "seeds", n, hi), steps = policy::read_numbers(a, info, "steps", n, hi);
  auto prompts = policy::read_numbers(a, info, "promptIndices", n, hi), samples = policy::read_numbers(a, info, "sampleIndices", n, hi);
  std::vector<uint64_t> keys;
  for (size_t i = 0; i < n; ++i)
    keys.push_back(model::stream_key(static_cast<uint64_t>(seeds[i]), static_cast<uint64_t>(steps[i]), static_cast<uint64_t>(prompts[i]),
                                     static_cast<uint64_t>(samples[i])));
  return keys;
}

// The session's KV bytes after `more_rows` new positions (K and V in fp32, blocks at most half
// empty): refuse work past half of RAM.
void require_kv_room(Args& a, const qwen::Session& s, int64_t more_rows) {
  const qwen::TextConfig& t = s.model()->cfg.text;
  const double bytes = static_cast<double>(s.kv_bytes()) + 2.0 * 8.0 * static_cast<double>(t.L * t.kv_dim()) * static_cast<double>(more_rows);
  if (phys_bytes() > 0 && bytes > 0.5 * phys_bytes())
    a.range_error("the session's KV caches would need more than half of this machine's RAM: release sequences or generate fewer tokens");
}

Napi::Value SessionCreate(const Napi::CallbackInfo& info) {
  Args a(info, "qwenSessionCreate");
  auto m = get_model(a);
  auto ext = Napi::External<SessionHandle>::New(info.Env(), new SessionHandle{std::make_shared<qwen::Session>(m)},
                                                [](Napi::Env, SessionHandle* p) { delete p; });
  napi_type_tag_object(info.Env(), ext, &kQwenSessionTag);
  return ext;
}

Napi::Value SessionDispose(const Napi::CallbackInfo& info) {
  Args a(info, "qwenSessionDispose");
  tagged_handle<SessionHandle>(a, "session", kQwenSessionTag, "qwen session")->s.reset();  // a running call keeps its own reference
  return info.Env().Undefined();
}

Napi::Value SessionAdd(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenSessionAdd", async);
  auto s = get_session(a);
  auto m = s->model();
  const Batch b = read_batch(a, *m, false);
  auto next = read_next(a, b);
  auto keys = read_keys(a, info, b.lengths.length);
  auto counters = policy::read_counters(a, info, b.lengths.length);
  require_kv_room(a, *s, b.rows);
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        *out = s->add(segments(b, *m, next.data), keys, counters);
      },
      [=](Napi::Env env) -> Napi::Value { return ids_to_js(env, *out); });
}

Napi::Value SessionAppend(const Napi::CallbackInfo& info) {
  Args a(info, "qwenSessionAppend");
  auto s = get_session(a);
  auto m = s->model();
  const Batch b = read_batch(a, *m, false);
  auto ids = a.i32("ids", static_cast<int64_t>(b.lengths.length));
  require_ids(a, *s, ids, true);
  auto next = read_next(a, b);
  require_kv_room(a, *s, b.rows);
  auto busy = acquire(a, m);
  s->append(std::vector<int64_t>(ids.data, ids.data + ids.length), segments(b, *m, next.data));
  return info.Env().Undefined();
}

Napi::Value SessionFork(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenSessionFork", async);
  auto s = get_session(a);
  auto m = s->model();
  const int64_t id = a.integer("id", 0, int64_t(1) << 53);
  if (!s->has(id)) a.range_error("`id` (" + std::to_string(id) + ") is not a live sequence of this session");
  const int64_t n = a.integer("n", 1, 4096);
  auto keys = read_keys(a, info, static_cast<size_t>(n));
  require_kv_room(a, *s, n * model::kKVFirstBlock);  // a child shares its parent's blocks: its own start small
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        *out = s->fork(id, keys);
      },
      [=](Napi::Env env) -> Napi::Value { return ids_to_js(env, *out); });
}

Napi::Value SessionGenerate(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenSessionGenerate", async);
  auto s = get_session(a);
  auto m = s->model();
  auto idv = a.i32("ids", -1);
  require_ids(a, *s, idv, true);
  std::vector<int64_t> ids(idv.data, idv.data + idv.length);
  const qwen::GenParams gp = read_gen_params(a, m->cfg.text.V);
  require_kv_room(a, *s, static_cast<int64_t>(ids.size()) * gp.max_new_tokens);
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<qwen::GenOut>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        *out = s->generate(ids, gp);
      },
      [=](Napi::Env env) -> Napi::Value { return gen_to_js(env, *out); });
}

Napi::Value SessionRelease(const Napi::CallbackInfo& info) {
  Args a(info, "qwenSessionRelease");
  auto s = get_session(a);
  auto ids = a.i32("ids", -1);
  require_ids(a, *s, ids, false);
  auto busy = acquire(a, s->model());
  for (size_t i = 0; i < ids.length; ++i) s->release(ids.data[i]);
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("qwenSessionCreate", Napi::Function::New(env, SessionCreate, "qwenSessionCreate"));
  exports.Set("qwenSessionDispose", Napi::Function::New(env, SessionDispose, "qwenSessionDispose"));
  exports.Set("qwenSessionAppend", Napi::Function::New(env, SessionAppend, "qwenSessionAppend"));
  exports.Set("qwenSessionRelease", Napi::Function::New(env, SessionRelease, "qwenSessionRelease"));
  export_sync_async(env, exports, "qwenSessionAdd", SessionAdd);
  export_sync_async(env, exports, "qwenSessionFork", SessionFork);
  export_sync_async(env, exports, "qwenSessionGenerate", SessionGenerate);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
