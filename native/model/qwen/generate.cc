// Batched KV-cache generation of the Qwen engine: one prefill of all prompts, then one decode step
// per token for the sequences still running.
#include <cstring>

#include "model/qwen/model.h"
#include "model/rng.h"
#include "model/sampling.h"

namespace medgym::qwen {

std::vector<GenOut> Model::generate(const std::vector<SeqRows>& prompts, const std::vector<int64_t>& next,
                                    const std::vector<uint64_t>& keys, const GenParams& gp) const {
  const size_t B = prompts.size();
  const int64_t V = cfg.text.V;
  std::vector<GenOut> out(B);
  if (B == 0 || gp.max_new_tokens <= 0) return out;
  std::vector<KVRows> caches(B);
  std::vector<SeqRows> rows = prompts;
  for (size_t s = 0; s < B; ++s) rows[s].cache = &caches[s];
  std::vector<float> logits(B * static_cast<size_t>(V));
  text_extend(cfg, w, rows, logits.data());

  std::vector<size_t> active(B);
  for (size_t s = 0; s < B; ++s) active[s] = s;
  std::vector<int32_t> tok(B), pos(3 * B);
  std::vector<double> scratch;
  std::vector<int32_t> order;
  model::SampleParams sp;
  sp.temperature = gp.temperature;
  sp.top_p = gp.top_p;
  sp.banned = gp.banned.empty() ? nullptr : &gp.banned;
  while (!active.empty()) {
    std::vector<size_t> still;
    for (size_t a = 0; a < active.size(); ++a) {
      const size_t s = active[a];
      GenOut& o = out[s];
      float lp = 0;
      const uint64_t n = o.tokens.size();
      const int32_t t = model::sample_token(logits.data() + a * V, V, sp, model::uniform01(keys[s], n), &lp, scratch, order);
      o.tokens.push_back(t);
      o.logp.push_back(lp);
      if (!gp.stop.empty() && gp.stop[static_cast<size_t>(t)]) o.finish = Finish::StopToken;
      else if (static_cast<int64_t>(o.tokens.size()) < gp.max_new_tokens) still.push_back(s);
    }
    active.swap(still);
    if (active.empty()) break;
    std::vector<SeqRows> step(active.size());
    for (size_t a = 0; a < active.size(); ++a) {
      const size_t s = active[a];
      tok[a] = out[s].tokens.back();
      const int32_t p = static_cast<int32_t>(next[s] + static_cast<int64_t>(out[s].tokens.size()) - 1);
      for (int ax = 0; ax < 3; ++ax) pos[3 * a + ax] = p;
      step[a].tokens = &tok[a];
      step[a].n = 1;
      step[a].pos = &pos[3 * a];
      step[a].cache = &caches[s];
      step[a].image_rows = false;  // a sampled <|image_pad|> has no image behind it
    }
    text_extend(cfg, w, step, logits.data());
  }
  return out;
}

}  // namespace medgym::qwen
