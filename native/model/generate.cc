#include "model/generate.h"
#include "model/accelerator.h"

#include <stdexcept>

#include "cpu/threadpool.h"
#include "model/rng.h"

namespace medgym::model {

Session::Session(std::shared_ptr<Model> model, bool kv_cache, uint64_t seed, std::vector<std::string> specials)
    : model_(std::move(model)),
      kv_(kv_cache),
      seed_(seed),
      version_(model_->weights_version),
      specials_(std::move(specials)),
      pool_(std::make_shared<KVPool>(model_->cfg)) {}

void Session::check_add(const int32_t* tokens, int64_t n, int64_t n_images) const {
  SeqInput q;
  q.tokens = tokens, q.n_tokens = n;
  if (n < 1) throw std::out_of_range("Expected at least one token for `tokens` of a new sequence");
  model_->validate({q}, n_images);
}

void Session::check_append(int64_t id, const int32_t* tokens, int64_t n, int64_t n_images) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) throw std::out_of_range("unknown or released sequence id " + std::to_string(id) + " (`ids`)");
  SeqInput q;
  q.tokens = tokens, q.n_tokens = n, q.past = it->second.length;
  model_->validate({q}, n_images);
}

void Session::check_ids(const std::vector<int64_t>& ids, bool distinct) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!seqs_.count(ids[i])) throw std::out_of_range("unknown or released sequence id " + std::to_string(ids[i]) + " (`ids`)");
    if (distinct)
      for (size_t j = 0; j < i; ++j)
        if (ids[j] == ids[i]) throw std::out_of_range("sequence id " + std::to_string(ids[i]) + " appears twice in `ids`");
  }
}

std::vector<int64_t> Session::add(const std::vector<std::vector<int32_t>>& tokens,
                                  const std::vector<std::vector<uint8_t>>& pixels,
                                  const std::vector<std::array<uint64_t, 4>>& keys, const std::vector<uint64_t>& counters) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Seq s;
    s.tokens = tokens[i];
    s.pixels = pixels[i];
    s.length = model_->expanded_length(s.tokens.data(), static_cast<int64_t>(s.tokens.size()));
    s.key = stream_key(keys[i][0], keys[i][1], keys[i][2], keys[i][3]);
    s.counter = i < counters.size() ? counters[i] : 0;
    s.cache = KVCache(pool_);
    int64_t id = next_id_++;
    seqs_.emplace(id, std::move(s));
    ids.push_back(id);
  }
  prefill(ids);
  return ids;
}

void Session::append(const std::vector<int64_t>& ids, const std::vector<std::vector<int32_t>>& tokens,
                     const std::vector<std::vector<uint8_t>>& pixels) {
  for (size_t i = 0; i < ids.size(); ++i) {
    Seq& s = seqs_.at(ids[i]);
    s.tokens.insert(s.tokens.end(), tokens[i].begin(), tokens[i].end());
    s.pixels.insert(s.pixels.end(), pixels[i].begin(), pixels[i].end());
    s.length += model_->expanded_length(tokens[i].data(), static_cast<int64_t>(tokens[i].size()));
  }
  prefill(ids);
}

std::vector<int64_t> Session::fork(int64_t id, const std::vector<std::array<uint64_t, 4>>& keys) {
  prefill({id});  // the children start from an up-to-date cache and its last logits
  const Seq& p = seqs_.at(id);
  std::vector<int64_t> ids;
  for (const auto& k : keys) {
    Seq s;
    s.tokens = p.tokens;
    s.pixels = p.pixels;
    s.committed = p.committed, s.committed_images = p.committed_images, s.cache_len = p.cache_len, s.length = p.length;
    s.cache = p.cache.fork(model_->cfg, p.cache_len);
    s.logits = p.logits;
    s.key = stream_key(k[0], k[1], k[2], k[3]);
    s.counter = p.counter;  // a child's tokens continue the parent's, so its draws do too
    if (model_->accel) {
      // The device cache is not shared (yet): the child recomputes its prompt; same tokens and logp.
      s.cache = KVCache(pool_);
      s.committed = 0, s.committed_images = 0, s.cache_len = 0;
    }
    const int64_t child = next_id_++;
    seqs_.emplace(child, std::move(s));
    ids.push_back(child);
  }
  if (model_->accel) prefill(ids);
  return ids;
}

void Session::prefill(const std::vector<int64_t>& ids, const std::function<void(size_t, const float*)>& after) {
  const Config& c = model_->cfg;
  std::vector<SeqInput>& in = in_;
  std::vector<size_t>& which = which_;  // index into ids of each input
  std::vector<Seq*>& seq = pending_;
  in.clear(), which.clear(), seq.clear();
  for (size_t k = 0; k < ids.size(); ++k) {
    Seq& s = seqs_.at(ids[k]);
    if (!kv_) s.committed = 0, s.committed_images = 0, s.cache_len = 0, s.cache.clear();  // reference mode: recompute all
    if (s.committed == static_cast<int64_t>(s.tokens.size())) continue;
    SeqInput q;
    q.tokens = s.tokens.data() + s.committed;
    q.n_tokens = static_cast<int64_t>(s.tokens.size()) - s.committed;
    q.pixels = s.pixels.data() + s.committed_images * c.image_bytes();
    q.past = s.cache_len;
    q.cache = &s.cache;
    in.push_back(q);
    which.push_back(k);
    seq.push_back(&s);
  }
  if (in.empty()) return;
  logits_.resize(in.size() * c.V);
  // Per sequence, on whichever thread finished it: its bookkeeping, its logits (kept for a later
  // call, unless the caller samples from them right away), then the caller's hook.
  model_->extend(in, logits_.data(), [&](int64_t i) {
    Seq& s = *seq[i];
    const SeqInput& q = in[i];
    int64_t imgs = 0;
    for (int64_t t = 0; t < q.n_tokens; ++t) imgs += q.tokens[t] == c.image_id;
    s.cache_len += model_->expanded_length(q.tokens, q.n_tokens);
    s.committed = static_cast<int64_t>(s.tokens.size());
    s.committed_images += imgs;
    const float* logits = logits_.data() + i * c.V;
    if (after) after(which[i], logits);
    else s.logits.assign(logits, logits + c.V);
  });
}

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::vector<GenerateOut> Session::generate(const std::vector<int64_t>& ids, const GenerateParams& gp) {
  const Config& c = model_->cfg;
  prefill(ids);
  std::vector<GenerateOut> out(ids.size());
  std::vector<std::string> text(ids.size());
  std::vector<size_t> active;
  std::vector<Seq*> seq(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    out[i].id = ids[i];
    seq[i] = &seqs_.at(ids[i]);
    if (gp.max_new_tokens <= 0) out[i].finish = Finish::MaxNewTokens;
    else active.push_back(i);
  }
  // <|image|> is never sampled, whatever the ban list: it has no pixels to expand to.
  std::vector<uint8_t> banned = gp.banned;
  banned.resize(c.V, 0);
  banned[c.image_id] = 1;
  SampleParams sp;
  sp.temperature = gp.temperature, sp.top_p = gp.top_p, sp.banned = &banned;
  std::vector<int32_t> toks(ids.size());
  std::vector<float> lps(ids.size());
  // Sequence i's next token from `logits` and its own stream: independent of every other sequence,
  // so it may run on any thread (the decode step samples inside extend's parallel region).
  auto sample = [&](size_t i, const float* logits) {
    thread_local std::vector<double> scratch;
    thread_local std::vector<int32_t> order;
    Seq& s = *seq[i];
    if (s.cache_len >= c.T) return;  // no room for another token: finishes as MaxSeq
    toks[i] = sample_token(logits, c.V, sp, uniform01(s.key, s.counter), &lps[i], scratch, order);
  };
  parallel_for(static_cast<int64_t>(active.size()), [&](int64_t b, int64_t e) {
    for (int64_t a = b; a < e; ++a) sample(active[a], seq[active[a]]->logits.data());
  }, 8);
  std::vector<size_t> next;
  std::vector<int64_t> ext;
  while (!active.empty()) {
    next.clear();
    for (size_t i : active) {
      Seq& s = *seq[i];
      if (s.cache_len >= c.T) {
        out[i].finish = Finish::MaxSeq;
        continue;
      }
      ++s.counter;
      const int32_t tok = toks[i];
      const float lp = lps[i];
      s.tokens.push_back(tok);
      s.length += tok == c.image_id ? c.Np() : 1;
      out[i].tokens.push_back(tok);
      out[i].logp.push_back(lp);
      if (tok >= 256 && tok - 256 < static_cast<int32_t>(specials_.size())) text[i] += specials_[tok - 256];
      else text[i].push_back(static_cast<char>(tok & 0xff));
      bool stop_string = false;
      for (const std::string& ss : gp.stop_strings) stop_string = stop_string || (!ss.empty() && ends_with(text[i], ss));
      if (!gp.stop.empty() && gp.stop[tok]) out[i].finish = Finish::StopToken;
      else if (stop_string) out[i].finish = Finish::StopString;
      else if (static_cast<int64_t>(out[i].tokens.size()) >= gp.max_new_tokens) out[i].finish = Finish::MaxNewTokens;
      else next.push_back(i);
    }
    // Feed the new tokens; each sequence samples its next one as soon as its logits are in.
    ext.clear();
    for (size_t i : next) ext.push_back(ids[i]);
    // (A sequence that stops leaves its last token pending, so a later call prefills it and gets
    // fresh logits: the decode step's logits are never needed again and are not kept.)
    prefill(ext, [&](size_t k, const float* logits) { sample(next[k], logits); });
    active.swap(next);
  }
  return out;
}

const std::vector<int32_t>& Session::tokens(int64_t id) const { return seqs_.at(id).tokens; }

void Session::release(int64_t id) { seqs_.erase(id); }

}  // namespace medgym::model
