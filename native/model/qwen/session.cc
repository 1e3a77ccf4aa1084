#include "model/qwen/session.h"

#include <cstring>

#include "cpu/threadpool.h"
#include "model/rng.h"
#include "model/sampling.h"

namespace medgym::qwen {

std::vector<int64_t> Session::add(std::vector<Segment> segs, const std::vector<uint64_t>& keys, const std::vector<uint64_t>& counters) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < segs.size(); ++i) {
    const int64_t id = next_id_++;
    Seq& s = seqs_[id];
    s.cache = KVRows(pool_);
    s.key = keys[i];
    s.counter = i < counters.size() ? counters[i] : 0;
    s.next = segs[i].next;
    s.pending.push_back(std::move(segs[i]));
    ids.push_back(id);
  }
  prefill(ids);
  return ids;
}

void Session::append(const std::vector<int64_t>& ids, std::vector<Segment> segs) {
  for (size_t i = 0; i < ids.size(); ++i) {
    Seq& s = seqs_.at(ids[i]);
    s.next = segs[i].next;
    s.pending.push_back(std::move(segs[i]));
  }
}

// Brings the caches of `ids` up to date (their pending segments as one batch) and keeps each one's
// last logits.
void Session::prefill(const std::vector<int64_t>& ids) {
  const Config& c = model_->cfg;
  std::vector<Seq*> todo;
  for (int64_t id : ids) {
    Seq& s = seqs_.at(id);
    if (!s.pending.empty()) todo.push_back(&s);
  }
  if (todo.empty()) return;
  // Each sequence's segments concatenated: ids, positions axis by axis, image rows.
  std::vector<Segment> joined(todo.size());
  std::vector<SeqRows> rows(todo.size());
  for (size_t k = 0; k < todo.size(); ++k) {
    Segment& j = joined[k];
    int64_t n = 0;
    for (const Segment& g : todo[k]->pending) n += static_cast<int64_t>(g.tokens.size());
    j.pos.resize(static_cast<size_t>(3 * n));
    int64_t at = 0;
    for (const Segment& g : todo[k]->pending) {
      const int64_t m = static_cast<int64_t>(g.tokens.size());
      j.tokens.insert(j.tokens.end(), g.tokens.begin(), g.tokens.end());
      j.embeds.insert(j.embeds.end(), g.embeds.begin(), g.embeds.end());
      for (int ax = 0; ax < 3; ++ax)
        std::memcpy(j.pos.data() + ax * n + at, g.pos.data() + ax * m, sizeof(int32_t) * static_cast<size_t>(m));
      at += m;
    }
    rows[k].tokens = j.tokens.data();
    rows[k].n = n;
    rows[k].pos = j.pos.data();
    rows[k].image_embeds = j.embeds.empty() ? nullptr : j.embeds.data();
    rows[k].cache = &todo[k]->cache;
  }
  std::vector<float> logits(todo.size() * static_cast<size_t>(c.text.V));
  text_extend(c, model_->w, rows, logits.data());
  for (size_t k = 0; k < todo.size(); ++k) {
    todo[k]->logits.assign(logits.begin() + static_cast<int64_t>(k) * c.text.V, logits.begin() + static_cast<int64_t>(k + 1) * c.text.V);
    todo[k]->pending.clear();
  }
}

std::vector<int64_t> Session::fork(int64_t id, const std::vector<uint64_t>& keys) {
  prefill({id});
  std::vector<int64_t> out;
  for (uint64_t key : keys) {
    const Seq& p = seqs_.at(id);  // re-read: inserting may not move map nodes, but stay explicit
    Seq child;
    child.cache = fork_rows(model_->cfg.text, p.cache);  // shares the parent's blocks
    child.logits = p.logits;
    child.next = p.next;
    child.key = key;
    child.counter = p.counter;  // a child's tokens continue the parent's, so its draws do too
    const int64_t cid = next_id_++;
    seqs_.emplace(cid, std::move(child));
    out.push_back(cid);
  }
  return out;
}

std::vector<GenOut> Session::generate(const std::vector<int64_t>& ids, const GenParams& gp) {
  const Config& c = model_->cfg;
  const int64_t V = c.text.V;
  prefill(ids);
  std::vector<GenOut> out(ids.size());
  if (gp.max_new_tokens <= 0) return out;
  std::vector<uint8_t> banned = gp.banned;
  banned.resize(static_cast<size_t>(V), 0);
  banned[static_cast<size_t>(c.image_token)] = 1;
  model::SampleParams sp;
  sp.temperature = gp.temperature;
  sp.top_p = gp.top_p;
  sp.banned = &banned;
  std::vector<size_t> active(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) active[i] = i;
  std::vector<Seq*> seq(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) seq[i] = &seqs_.at(ids[i]);
  std::vector<int32_t> tok(ids.size());
  std::vector<float> logp(ids.size());
  while (!active.empty()) {
    // Each sequence samples from its own stream and logits, so the threads may share them out (a
    // pass over the vocabulary per sequence: worth as much as a GEMM at batch 16).
    parallel_run([&](int tid, int nthreads) {
      int64_t a0, a1;
      static_chunk(static_cast<int64_t>(active.size()), tid, nthreads, &a0, &a1);
      std::vector<double> scratch;
      std::vector<int32_t> order;
      for (int64_t a = a0; a < a1; ++a) {
        const size_t i = active[static_cast<size_t>(a)];
        Seq& s = *seq[i];
        tok[i] = model::sample_token(s.logits.data(), V, sp, model::uniform01(s.key, s.counter++), &logp[i], scratch, order);
      }
    }, static_cast<int>(active.size()));
    std::vector<size_t> still;
    for (size_t i : active) {
      Seq& s = *seq[i];
      const int32_t t = tok[i];
      const float lp = logp[i];
      out[i].tokens.push_back(t);
      out[i].logp.push_back(lp);
      // The sampled token waits (pending) until it is fed back: at the next step, or after the call.
      Segment g;
      g.tokens = {t};
      g.pos = {static_cast<int32_t>(s.next), static_cast<int32_t>(s.next), static_cast<int32_t>(s.next)};
      g.next = ++s.next;
      s.pending.push_back(std::move(g));
      if (!gp.stop.empty() && gp.stop[static_cast<size_t>(t)]) out[i].finish = Finish::StopToken;
      else if (static_cast<int64_t>(out[i].tokens.size()) < gp.max_new_tokens) still.push_back(i);
    }
    active.swap(still);
    if (active.empty()) break;
    std::vector<int64_t> step;
    for (size_t i : active) step.push_back(ids[i]);
    prefill(step);
  }
  return out;
}

}  // namespace medgym::qwen
