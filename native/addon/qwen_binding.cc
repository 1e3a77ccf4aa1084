// Qwen2-VL / Qwen2.5-VL (native/model/qwen) for JS: a model handle (type-tagged external), its
// weight table, and the heavy calls (encode images, score, last-row logits, generate), each sync or
// async (a Promise; inputs are copied, so JS may reuse its arrays meanwhile). Batches are ragged
// (qwen_js.h); the generation sessions are in qwen_session_binding.cc.
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/args.h"
#include "addon/policy_common.h"
#include "addon/qwen_js.h"
#include "model/qwen/model.h"
#include "model/qwen/session.h"
#include "model/rng.h"

namespace medgym::addon {
namespace {

using namespace qwen_js;  // NOLINT: this file's own helpers
using qwen::Config;
using policy::acquire;  // the one-heavy-op guard and the model-check runner, shared with the policy
using policy::checked;

Config read_config(Args& a) {
  Config c;
  qwen::TextConfig& t = c.text;
  t.V = a.integer("vocabSize", 1, 1 << 22);
  t.D = a.integer("hidden", 1, 65536);
  t.I = a.integer("intermediate", 1, 1 << 20);
  t.L = a.integer("layers", 1, 512);
  t.H = a.integer("heads", 1, 65536);
  t.KVH = a.integer("kvHeads", 1, 65536);
  t.hd = a.integer("headDim", 1, 65536);
  t.eps = a.number("rmsEps", 1e-12, 0.5);
  t.theta = a.number("ropeTheta", 1.0001, 1e12);
  t.mrope[0] = a.integer("mropeT", 0, 65536);
  t.mrope[1] = a.integer("mropeH", 0, 65536);
  t.mrope[2] = a.integer("mropeW", 0, 65536);
  t.tied = a.boolean("tieEmbeddings", true);
  qwen::VisionConfig& v = c.vision;
  v.qwen25 = a.choice("family", {"qwen2_vl", "qwen2_5_vl"}) == 1;
  v.depth = a.integer("visionDepth", 1, 256);
  v.dim = a.integer("visionDim", 1, 65536);
  v.heads = a.integer("visionHeads", 1, 65536);
  v.mlp = a.integer("visionMlp", 1, 1 << 20);
  v.in_ch = a.integer("inChannels", 1, 4);
  v.patch = a.integer("patch", 1, 64);
  v.merge = a.integer("merge", 1, 8);
  v.temporal = a.integer("temporalPatch", 1, 8);
  v.out = a.integer("outHidden", 1, 65536);
  if (v.qwen25) {
    v.window = a.integer("windowSize", 1, 1 << 16);
    auto full = a.i32("fullAttBlocks", -1);
    for (size_t i = 0; i < full.length && i < 256; ++i) v.full_blocks.push_back(full.data[i]);
  }
  c.image_token = static_cast<int32_t>(a.integer("imageToken", 0, (1 << 22) - 1));
  checked(a, [&] { c.validate(); });
  return c;
}

qwen::Dtype read_dtype(Args& a) {
  return a.has("dtype") && a.choice("dtype", {"float32", "bfloat16"}) == 1 ? qwen::Dtype::BF16 : qwen::Dtype::F32;
}

Napi::Array table_to_js(Napi::Env env, const std::vector<qwen::TensorSpec>& table) {
  auto arr = Napi::Array::New(env, table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("name", table[i].name);
    auto shape = Napi::Array::New(env, table[i].shape.size());
    for (size_t k = 0; k < table[i].shape.size(); ++k) shape.Set(static_cast<uint32_t>(k), static_cast<double>(table[i].shape[k]));
    o.Set("shape", shape);
    o.Set("size", static_cast<double>(table[i].size));
    o.Set("dtype", table[i].bf16 ? "bfloat16" : "float32");
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

// Refuses weights past `maxParams` or 3/4 of RAM before allocating them (a config is untrusted).
// total / total16: parameters stored in fp32 / bf16.
void require_budget(Args& a, int64_t total, int64_t total16) {
  const double max_params = a.number("maxParams", 1, 9007199254740991.0, 16.0 * double(int64_t(1) << 30));
  const double params = static_cast<double>(total) + static_cast<double>(total16);
  const double need = 4.0 * static_cast<double>(total) + 2.0 * static_cast<double>(total16), phys = phys_bytes();
  if (params > max_params)
    a.range_error("the config has " + std::to_string(total + total16) + " parameters, more than `maxParams` " +
                  std::to_string(static_cast<int64_t>(max_params)));
  if (phys > 0 && need > 0.75 * phys)
    a.range_error("the config's " + std::to_string(total + total16) + " weights need " + std::to_string(need / 1073741824.0).substr(0, 5) +
                  " GiB, more than 3/4 of this machine's RAM");
}

// ---- entry points -----------------------------------------------------------------------------------

Napi::Value ConfigTable(const Napi::CallbackInfo& info) {
  Args a(info, "qwenConfigTable");
  const Config c = read_config(a);
  int64_t total = 0, total16 = 0;
  auto table = qwen::Weights::build_table(c, read_dtype(a), &total, &total16);
  return table_to_js(info.Env(), table);
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  Args a(info, "qwenCreate");
  const Config c = read_config(a);
  const qwen::Dtype dt = read_dtype(a);
  const bool bf16_decode = a.has("decodeMath") && a.choice("decodeMath", {"exact", "bf16"}) == 1;
  if (bf16_decode && dt != qwen::Dtype::BF16) a.range_error("`decodeMath` 'bf16' needs `dtype` 'bfloat16' (bf16 weights)");
  int64_t total = 0, total16 = 0;
  qwen::Weights::build_table(c, dt, &total, &total16);
  require_budget(a, total, total16);
  const bool random = a.has("seed");
  const int64_t seed = random ? a.integer("seed", 0, (int64_t(1) << 53) - 1) : 0;
  std::shared_ptr<Model> m;
  try {
    m = std::make_shared<Model>(c, dt, bf16_decode);
  } catch (const std::bad_alloc&) {
    a.range_error("out of memory allocating " + std::to_string(total + total16) + " weights");
  }
  if (random) m->w.init_random(c, static_cast<uint64_t>(seed));  // else zeros, for qwenSetTensor to fill
  auto ext = Napi::External<Handle>::New(info.Env(), new Handle{m}, [](Napi::Env, Handle* p) { delete p; });
  napi_type_tag_object(info.Env(), ext, &kQwenTag);
  return ext;
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Args a(info, "qwenDispose");
  tagged_handle<Handle>(a, "model", kQwenTag, "qwen model")->m.reset();  // a running call holds its own reference: the weights go when it is done
  return info.Env().Undefined();
}

Napi::Value Table(const Napi::CallbackInfo& info) {
  Args a(info, "qwenTable");
  return table_to_js(info.Env(), get_model(a)->w.table);
}

Napi::Value SetTensor(const Napi::CallbackInfo& info) {
  Args a(info, "qwenSetTensor");
  auto m = get_model(a);
  auto busy = acquire(a, m);
  const int64_t index = a.integer("index", 0, static_cast<int64_t>(m->w.table.size()) - 1);
  const int64_t size = m->w.table[static_cast<size_t>(index)].size;
  if (a.is_typed("data", napi_uint16_array)) {  // bf16 bits, as a BF16 checkpoint holds them
    auto data = a.u16("data", size);
    a.require_finite_bf16("data", data);
    m->w.set_tensor(m->cfg, index, data.data, static_cast<int64_t>(data.length));
  } else {
    auto data = a.f32("data", size);
    a.require_finite("data", data);
    m->w.set_tensor(m->cfg, index, data.data, static_cast<int64_t>(data.length));
  }
  ++m->weights_version;  // sessions made before hold stale caches
  return info.Env().Undefined();
}

Napi::Value GetTensor(const Napi::CallbackInfo& info) {
  Args a(info, "qwenGetTensor");
  auto m = get_model(a);
  const int64_t index = a.integer("index", 0, static_cast<int64_t>(m->w.table.size()) - 1);
  auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(m->w.table[static_cast<size_t>(index)].size));
  m->w.get_tensor(m->cfg, index, out.Data());
  return out;
}

Napi::Value EncodeImages(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenEncodeImages", async);
  auto m = get_model(a);
  const qwen::VisionConfig& v = m->cfg.vision;
  auto g = a.i32("grids", -1);
  if (g.length == 0 || g.length % 3 || g.length > 3 * 4096) a.range_error("Expected 1 to 4096 [t, h, w] triples in `grids`");
  std::vector<qwen::Grid> grids;
  for (size_t i = 0; i < g.length; i += 3) grids.push_back({g.data[i], g.data[i + 1], g.data[i + 2]});
  int64_t n = 0;
  checked(a, [&] { n = qwen::vision_patches(v, grids); });
  auto px = a.f32("pixels", n * v.patch_len());
  a.require_finite("pixels", px);
  const double need = 4.0 * static_cast<double>(n) * static_cast<double>(8 * v.dim + 2 * v.mlp);
  if (phys_bytes() > 0 && need > 0.5 * phys_bytes()) a.range_error("the images need more than half of this machine's RAM: encode fewer at once");
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<float>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        out->resize(static_cast<size_t>(n / v.unit() * v.out));
        qwen::vision_forward(m->cfg, m->w, px.data, grids, out->data());
      },
      [=](Napi::Env env) -> Napi::Value {
        auto arr = Napi::Float32Array::New(env, out->size());
        if (!out->empty()) std::memcpy(arr.Data(), out->data(), out->size() * sizeof(float));
        return arr;
      });
}

Napi::Value Score(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenScore", async);
  auto m = get_model(a);
  const Batch b = read_batch(a, *m, true);
  const float tau = static_cast<float>(a.number("temperature", 1e-6, 1e6, 1.0));
  const bool want_entropy = a.boolean("entropy", true);
  auto busy = acquire(a, m);
  auto logp = std::make_shared<std::vector<float>>(), ent = std::make_shared<std::vector<float>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        logp->assign(static_cast<size_t>(b.rows), 0.0f);
        if (want_entropy) ent->assign(static_cast<size_t>(b.rows), 0.0f);
        qwen::text_score(m->cfg, m->w, seq_rows(b, *m), tau, logp->data(), want_entropy ? ent->data() : nullptr);
      },
      [=](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        for (auto [name, v] : {std::pair{"logp", logp}, std::pair{"entropy", ent}}) {
          auto arr = Napi::Float32Array::New(env, v->size());
          if (!v->empty()) std::memcpy(arr.Data(), v->data(), v->size() * sizeof(float));
          o.Set(name, arr);
        }
        return o;
      });
}

Napi::Value LastLogits(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenLastLogits", async);
  auto m = get_model(a);
  const Batch b = read_batch(a, *m, false);
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<float>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        std::vector<qwen::SeqRows> rows = seq_rows(b, *m);
        std::vector<qwen::KVRows> caches(rows.size(), qwen::KVRows(qwen::new_kv_pool(m->cfg.text)));
        for (size_t s = 0; s < rows.size(); ++s) rows[s].cache = &caches[s];
        out->resize(rows.size() * static_cast<size_t>(m->cfg.text.V));
        qwen::text_extend(m->cfg, m->w, rows, out->data());
      },
      [=](Napi::Env env) -> Napi::Value {
        auto arr = Napi::Float32Array::New(env, out->size());
        std::memcpy(arr.Data(), out->data(), out->size() * sizeof(float));
        return arr;
      });
}

Napi::Value Generate(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenGenerate", async);
  auto m = get_model(a);
  const Batch b = read_batch(a, *m, false);
  const int64_t V = m->cfg.text.V;
  auto next = read_next(a, b);
  const qwen::GenParams gp = read_gen_params(a, V);
  const double seed = a.number("seed", 0, 9007199254740991.0, 0);
  // The KV caches at the longest: every sequence's prompt plus max_new_tokens rows (capacity doubles).
  const qwen::TextConfig& t = m->cfg.text;
  const double kv = 2.0 * 8.0 * static_cast<double>(t.L * t.kv_dim()) *
                    static_cast<double>(b.rows + static_cast<int64_t>(b.lengths.length) * gp.max_new_tokens);
  if (phys_bytes() > 0 && kv > 0.5 * phys_bytes())
    a.range_error("the KV caches of " + std::to_string(b.lengths.length) + " sequences with `maxNewTokens` " +
                  std::to_string(gp.max_new_tokens) + " would need more than half of this machine's RAM");
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<qwen::GenOut>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        std::vector<uint64_t> keys;
        for (size_t s = 0; s < b.lengths.length; ++s) keys.push_back(model::stream_key(static_cast<uint64_t>(seed), 0, s, 0));
        qwen::Session session(m);
        *out = session.generate(session.add(segments(b, *m, next.data), keys), gp);
      },
      [=](Napi::Env env) -> Napi::Value { return gen_to_js(env, *out); });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("qwenConfigTable", Napi::Function::New(env, ConfigTable, "qwenConfigTable"));
  exports.Set("qwenCreate", Napi::Function::New(env, Create, "qwenCreate"));
  exports.Set("qwenDispose", Napi::Function::New(env, Dispose, "qwenDispose"));
  exports.Set("qwenTable", Napi::Function::New(env, Table, "qwenTable"));
  exports.Set("qwenSetTensor", Napi::Function::New(env, SetTensor, "qwenSetTensor"));
  exports.Set("qwenGetTensor", Napi::Function::New(env, GetTensor, "qwenGetTensor"));
  export_sync_async(env, exports, "qwenEncodeImages", EncodeImages);
  export_sync_async(env, exports, "qwenScore", Score);
  export_sync_async(env, exports, "qwenLastLogits", LastLogits);
  export_sync_async(env, exports, "qwenGenerate", Generate);
}

MEDGYM_REGISTER_BINDINGS(Init);

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
