#include "addon/qwen_js.h"

#include <unistd.h>

#include <cstring>
#include <string>

namespace medgym::addon::qwen_js {

double phys_bytes() { return static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE)); }

std::shared_ptr<Model> get_model(Args& a) {
  Handle* h = tagged_handle<Handle>(a, "model", kQwenTag, "qwen model");
  if (!h->m) a.type_error("the qwen model was disposed (`model`)");
  return h->m;
}


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

View<int32_t> read_next(Args& a, const Batch& b) {
  auto next = a.i32("next", static_cast<int64_t>(b.lengths.length));
  for (size_t s = 0; s < next.length; ++s)
    if (next.data[s] < 0 || next.data[s] > (1 << 30)) a.range_error("`next` entry " + std::to_string(s) + " must be in [0, 2^30]");
  return next;
}

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
Napi::Int32Array ids_to_js(Napi::Env env, const std::vector<int64_t>& ids) {
  auto arr = Napi::Int32Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) arr[i] = static_cast<int32_t>(ids[i]);
  return arr;
}

}  // namespace medgym::addon::qwen_js
