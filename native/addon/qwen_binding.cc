// Qwen2-VL / Qwen2.5-VL (native/model/qwen) for JS: a model handle (type-tagged external), its
// weight table, and the heavy calls (encode images, score, last-row logits, generate), each sync or
// async (a Promise; inputs are copied, so JS may reuse its arrays meanwhile). Batches are ragged:
// `tokens` concatenated with `lengths` per sequence, `positions` the sequences' [3, n] M-RoPE ids
// concatenated, `imageEmbeds` the rows of their image tokens in order (src/models/qwen2_vl/engine.ts).
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "addon/args.h"
#include "addon/policy_common.h"
#include "model/qwen/model.h"
#include "model/qwen/session.h"
#include "model/rng.h"

namespace medgym::addon {
namespace {

using qwen::Config;
using qwen::Model;

constexpr napi_type_tag kQwenTag = {0x6d656467796d5177ull, 0x656e000000000001ull};
constexpr napi_type_tag kQwenSessionTag = {0x6d656467796d5177ull, 0x656e536573730001ull};

struct Handle {
  std::shared_ptr<Model> m;
};
struct SessionHandle {
  std::shared_ptr<qwen::Session> s;
};

using policy::acquire;  // the one-heavy-op guard and the model-check runner, shared with the policy
using policy::checked;

double phys_bytes() { return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE)); }

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

std::shared_ptr<Model> get_model(Args& a) {
  Napi::Value v = a.get("model");
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &kQwenTag, &ok);
  if (!ok) a.type_error("Expected a qwen model handle for `model`");
  auto* h = v.As<Napi::External<Handle>>().Data();
  if (!h->m) a.type_error("the qwen model was disposed (`model`)");
  return h->m;
}


// A ragged batch, checked against the model: ids in range, positions, one image row per image token.
struct Batch {
  View<int32_t> tokens, lengths, positions, targets;
  View<float> embeds;
  std::vector<int64_t> off;  // token offset of each sequence
  std::vector<int64_t> img;  // first image row of each sequence
  int64_t rows = 0;
};

Batch read_batch(Args& a, const Model& m, bool with_targets) {
  const qwen::TextConfig& t = m.cfg.text;
  Batch b;
  b.lengths = a.i32("lengths", -1);
  if (b.lengths.length == 0 || b.lengths.length > 65536) a.range_error("Expected 1 to 65536 sequences in `lengths`");
  int64_t total = 0;
  for (size_t s = 0; s < b.lengths.length; ++s) {
    const int64_t n = b.lengths.data[s];
    if (n < 1 || n > (1 << 24)) a.range_error("`lengths` entry " + std::to_string(s) + " must be in [1, 2^24]");
    b.off.push_back(total);
    total += n;
  }
  if (total > (int64_t(1) << 26)) a.range_error("more than 2^26 tokens in one call (`lengths`)");
  b.rows = total;
  b.tokens = a.i32("tokens", total);
  b.positions = a.i32("positions", 3 * total);
  if (with_targets) b.targets = a.i32("targets", total);
  int64_t images = 0;
  for (size_t s = 0; s < b.lengths.length; ++s) {
    b.img.push_back(images);
    for (int64_t i = b.off[s]; i < b.off[s] + b.lengths.data[s]; ++i) {
      const int32_t id = b.tokens.data[i];
      if (id < 0 || id >= t.V)
        a.range_error("`tokens` entry " + std::to_string(i) + " (" + std::to_string(id) + ") is not a token id < " + std::to_string(t.V));
      images += id == m.cfg.image_token;
      if (with_targets && (b.targets.data[i] < -1 || b.targets.data[i] >= t.V))
        a.range_error("`targets` entry " + std::to_string(i) + " must be -1 or a token id < " + std::to_string(t.V));
    }
  }
  for (int64_t i = 0; i < 3 * total; ++i)
    if (b.positions.data[i] < 0 || b.positions.data[i] > (1 << 30))
      a.range_error("`positions` entry " + std::to_string(i) + " must be in [0, 2^30]");
  b.embeds = images ? a.f32("imageEmbeds", images * t.D) : a.f32_optional("imageEmbeds", 0);
  // Activations: a handful of [rows, D] buffers, the MLP's [rows, 2I] and the K/V rows.
  const double need = 4.0 * static_cast<double>(total) * static_cast<double>(6 * t.D + 2 * t.I + 4 * t.kv_dim() * t.L);
  if (phys_bytes() > 0 && need > 0.5 * phys_bytes())
    a.range_error("a batch of " + std::to_string(total) + " tokens needs " + std::to_string(need / 1073741824.0).substr(0, 5) +
                  " GiB of activations, more than half of this machine's RAM: split it");
  return b;
}

std::vector<qwen::SeqRows> seq_rows(const Batch& b, const Model& m) {
  std::vector<qwen::SeqRows> out(b.lengths.length);
  for (size_t s = 0; s < out.size(); ++s) {
    qwen::SeqRows& r = out[s];
    r.n = b.lengths.data[s];
    r.tokens = b.tokens.data + b.off[s];
    r.pos = b.positions.data + 3 * b.off[s];
    r.image_embeds = b.embeds.data ? b.embeds.data + b.img[s] * m.cfg.text.D : nullptr;
    if (b.targets.data) r.targets = b.targets.data + b.off[s];
  }
  return out;
}

// Per sequence, the position after it (ropeIndex's `next`): where its sampled tokens go.
View<int32_t> read_next(Args& a, const Batch& b) {
  auto next = a.i32("next", static_cast<int64_t>(b.lengths.length));
  for (size_t s = 0; s < next.length; ++s)
    if (next.data[s] < 0 || next.data[s] > (1 << 30)) a.range_error("`next` entry " + std::to_string(s) + " must be in [0, 2^30]");
  return next;
}

// The batch's sequences as session segments (copies); next[s]: the position after sequence s.
std::vector<qwen::Segment> segments(const Batch& b, const Model& m, const int32_t* next) {
  const int64_t D = m.cfg.text.D;
  std::vector<qwen::Segment> out(b.lengths.length);
  int64_t img = 0;
  for (size_t s = 0; s < out.size(); ++s) {
    qwen::Segment& g = out[s];
    const int64_t n = b.lengths.data[s];
    g.tokens.assign(b.tokens.data + b.off[s], b.tokens.data + b.off[s] + n);
    g.pos.assign(b.positions.data + 3 * b.off[s], b.positions.data + 3 * (b.off[s] + n));
    int64_t k = 0;
    for (int32_t t : g.tokens) k += t == m.cfg.image_token;
    if (k) g.embeds.assign(b.embeds.data + img * D, b.embeds.data + (img + k) * D);
    img += k;
    g.next = next[s];
  }
  return out;
}

qwen::GenParams read_gen_params(Args& a, int64_t V) {
  qwen::GenParams gp;
  gp.max_new_tokens = a.integer("maxNewTokens", 0, 1 << 20, 256);
  gp.temperature = a.number("temperature", 0, 1e6, 1.0);
  gp.top_p = a.number("topP", 1e-9, 1, 1.0);
  for (auto [name, dst] : {std::pair{"stopTokens", &gp.stop}, std::pair{"bannedTokens", &gp.banned}}) {
    auto ids = a.i32_optional(name, -1);
    if (!ids.length) continue;
    dst->assign(static_cast<size_t>(V), 0);
    for (size_t i = 0; i < ids.length; ++i) {
      if (ids.data[i] < 0 || ids.data[i] >= V) a.range_error("`" + std::string(name) + "` entry " + std::to_string(i) + " is not a token id");
      (*dst)[static_cast<size_t>(ids.data[i])] = 1;
    }
  }
  return gp;
}

Napi::Array gen_to_js(Napi::Env env, const std::vector<qwen::GenOut>& outs) {
  auto arr = Napi::Array::New(env, outs.size());
  for (size_t s = 0; s < outs.size(); ++s) {
    const qwen::GenOut& g = outs[s];
    auto o = Napi::Object::New(env);
    auto t = Napi::Int32Array::New(env, g.tokens.size());
    auto l = Napi::Float32Array::New(env, g.logp.size());
    if (!g.tokens.empty()) {
      std::memcpy(t.Data(), g.tokens.data(), g.tokens.size() * sizeof(int32_t));
      std::memcpy(l.Data(), g.logp.data(), g.logp.size() * sizeof(float));
    }
    o.Set("tokens", t);
    o.Set("logp", l);
    o.Set("finishReason", g.finish == qwen::Finish::StopToken ? "stop_token" : "max_new_tokens");
    arr.Set(static_cast<uint32_t>(s), o);
  }
  return arr;
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
  Napi::Value v = a.get("model");
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &kQwenTag, &ok);
  if (!ok) a.type_error("Expected a qwen model handle for `model`");
  auto* h = v.As<Napi::External<Handle>>().Data();
  h->m.reset();  // a running call holds its own reference: the weights go when it is done
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
        std::vector<qwen::KVRows> caches(rows.size());
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


Napi::Int32Array ids_to_js(Napi::Env env, const std::vector<int64_t>& ids) {
  auto arr = Napi::Int32Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) arr[i] = static_cast<int32_t>(ids[i]);
  return arr;
}

// ---- sessions -----------------------------------------------------------------------------------------

std::shared_ptr<qwen::Session> get_session(Args& a) {
  Napi::Value v = a.get("session");
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &kQwenSessionTag, &ok);
  if (!ok) a.type_error("Expected a qwen session handle for `session`");
  auto* h = v.As<Napi::External<SessionHandle>>().Data();
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

// KV rows a session may hold in all (capacity doubles): refuse work past half of RAM.
void require_kv_room(Args& a, const qwen::Session& s, int64_t more_rows) {
  const qwen::TextConfig& t = s.model()->cfg.text;
  const double bytes = 2.0 * 8.0 * static_cast<double>(t.L * t.kv_dim()) * static_cast<double>(s.cached_rows() + more_rows);
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
  Napi::Value v = a.get("session");
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &kQwenSessionTag, &ok);
  if (!ok) a.type_error("Expected a qwen session handle for `session`");
  v.As<Napi::External<SessionHandle>>().Data()->s.reset();  // a running call keeps its own reference
  return info.Env().Undefined();
}

Napi::Value SessionAdd(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "qwenSessionAdd", async);
  auto s = get_session(a);
  auto m = s->model();
  const Batch b = read_batch(a, *m, false);
  auto next = read_next(a, b);
  auto keys = read_keys(a, info, b.lengths.length);
  require_kv_room(a, *s, b.rows);
  auto busy = acquire(a, m);
  auto out = std::make_shared<std::vector<int64_t>>();
  return a.run(
      async,
      [=] {
        (void)busy;  // held until the work is done
        *out = s->add(segments(b, *m, next.data), keys);
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
  require_kv_room(a, *s, n * s->rows(id));
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
