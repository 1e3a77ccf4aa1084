#include "model/kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace medgym::model {

KVPool::~KVPool() {
  for (float* p : free_) std::free(p);
}

std::shared_ptr<float> KVPool::take() {
  float* p = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!free_.empty()) {
      p = free_.back();
      free_.pop_back();
    }
  }
  if (!p) {
    const size_t bytes = ((static_cast<size_t>(floats_) * sizeof(float) + 63) / 64) * 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
  }
  // The deleter keeps the pool alive, so a block may outlive its session.
  std::shared_ptr<KVPool> self = shared_from_this();
  return std::shared_ptr<float>(p, [self](float* q) {
    std::lock_guard<std::mutex> lk(self->mu_);
    self->free_.push_back(q);
  });
}

void KVCache::reserve(int64_t n) {
  while (size_ < n) {
    if (owns_last_ && ext_.back().rows < kKVBlock) {
      const int64_t grow = std::min(kKVBlock - ext_.back().rows, n - size_);
      ext_.back().rows += grow;
      size_ += grow;
    } else {  // the last extent is full or shared (then a multiple of 8 rows): a new block
      ext_.push_back({pool_->take(), 0});
      owns_last_ = true;
    }
  }
}

void KVCache::clear() {
  ext_.clear();
  size_ = 0;
  owns_last_ = false;
}

KVCache KVCache::fork(const Config& c, int64_t len) const {
  KVCache child(pool_);
  const int64_t shared = len / 8 * 8;  // extents keep multiples of 8 rows
  for (const Extent& e : ext_) {
    if (child.size_ >= shared) break;
    const int64_t rows = std::min(e.rows, shared - child.size_);
    child.ext_.push_back({e.block, rows});
    child.size_ += rows;
  }
  if (len > shared) {  // the last len % 8 rows into the child's own first block
    child.reserve(len);
    const int64_t hd = c.hd(), hs = head_stride(c);
    for (int64_t pos = shared; pos < len; ++pos)
      for (int64_t slot = 0; slot < 2 * c.L; ++slot)
        for (int64_t h = 0; h < c.H; ++h)
          std::memcpy(child.row(c, slot, pos) + h * hs, row(c, slot, pos) + h * hs, hd * sizeof(float));
  }
  return child;
}

float* KVCache::row(const Config& c, int64_t slot, int64_t pos) const {
  int64_t start = size_;
  for (size_t e = ext_.size(); e-- > 0;) {  // positions asked for are near the end
    start -= ext_[e].rows;
    if (pos >= start) return ext_[e].block.get() + slot * kKVBlock * c.d + (pos - start) * c.hd();
  }
  return nullptr;  // pos < 0: never asked for
}

void KVCache::extents(std::vector<KVExtent>& out) const {
  out.clear();
  for (const Extent& e : ext_) out.push_back({e.block.get(), e.rows});
}

}  // namespace medgym::model
