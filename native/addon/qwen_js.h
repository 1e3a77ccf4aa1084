// What the Qwen bindings share (qwen_binding.cc: the model's calls; qwen_session_binding.cc: the
// generation sessions'): the handles' type tags, the model handle, and the reading of a ragged batch
// (`tokens` concatenated with `lengths` per sequence, `positions` the sequences' [3, n] M-RoPE ids
// concatenated, `imageEmbeds` the rows of their image tokens in order) and of sampling parameters.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "model/qwen/model.h"
#include "model/qwen/session.h"

namespace medgym::addon::qwen_js {

using qwen::Model;

constexpr napi_type_tag kQwenTag = {0x6d656467796d5177ull, 0x656e000000000001ull};
constexpr napi_type_tag kQwenSessionTag = {0x6d656467796d5177ull, 0x656e536573730001ull};

struct Handle {
  std::shared_ptr<Model> m;
};
struct SessionHandle {
  std::shared_ptr<qwen::Session> s;
};

// The handle object behind field `name` when it is an external tagged `tag` (a TypeError naming
// the field and `what` otherwise).
template <typename H>
H* tagged_handle(Args& a, const char* name, const napi_type_tag& tag, const char* what) {
  Napi::Value v = a.get(name);
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(a.env(), v, &tag, &ok);
  if (!ok) a.type_error(std::string("Expected a ") + what + " handle for `" + name + "`");
  return v.As<Napi::External<H>>().Data();
}

// This machine's RAM in bytes (0 when unknown): work past a share of it is refused up front.
double phys_bytes();
// The live model of `model` (a TypeError for anything else or a disposed one).
std::shared_ptr<Model> get_model(Args& a);

// A ragged batch, checked against the model: ids in range, positions, one image row per image token.
struct Batch {
  View<int32_t> tokens, lengths, positions, targets;
  View<float> embeds;
  std::vector<int64_t> off;  // token offset of each sequence
  std::vector<int64_t> img;  // first image row of each sequence
  int64_t rows = 0;
};

// Reads and checks `lengths`, `tokens`, `positions` (and `targets`) and the image rows.
Batch read_batch(Args& a, const Model& m, bool with_targets);
std::vector<qwen::SeqRows> seq_rows(const Batch& b, const Model& m);
// Per sequence, the position after it (ropeIndex's `next`): where its sampled tokens go.
View<int32_t> read_next(Args& a, const Batch& b);
// The batch's sequences as session segments (copies); next[s]: the position after sequence s.
std::vector<qwen::Segment> segments(const Batch& b, const Model& m, const int32_t* next);
qwen::GenParams read_gen_params(Args& a, int64_t V);
Napi::Array gen_to_js(Napi::Env env, const std::vector<qwen::GenOut>& outs);
Napi::Int32Array ids_to_js(Napi::Env env, const std::vector<int64_t>& ids);

}  // namespace medgym::addon::qwen_js
