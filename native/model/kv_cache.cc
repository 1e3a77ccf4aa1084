#include "model/kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace medgym::model {

KVPool::~KVPool() {
  for (void* p : slabs_) std::free(p);
}

std::shared_ptr<float> KVPool::take(int64_t cap) {
  float* p = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<float*>& list = free_[cap];
    if (list.empty()) {  // a new slab of blocks of this size, on huge pages where the OS gives them
      const size_t block = ((static_cast<size_t>(cap * floats_per_row_) * sizeof(float) + 63) / 64) * 64;
      // 2 MiB holding as many blocks as fit, or one big block rounded up to 2 MiB: < 2 MiB wasted.
      const size_t slab = (std::max(kSlabBytes, block) + kSlabBytes - 1) / kSlabBytes * kSlabBytes;
      char* base = static_cast<char*>(std::aligned_alloc(kSlabBytes, slab));
      if (!base) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
      madvise(base, slab, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
      slabs_.push_back(base);
      bytes_ += static_cast<int64_t>(slab);
      for (size_t off = 0; off + block <= slab; off += block) list.push_back(reinterpret_cast<float*>(base + off));
    }
    p = list.back();
    list.pop_back();
  }
  // The deleter keeps the pool alive, so a block may outlive its session.
  std::shared_ptr<KVPool> self = shared_from_this();
  return std::shared_ptr<float>(p, [self, cap](float* q) {
    std::lock_guard<std::mutex> lk(self->mu_);
    self->free_[cap].push_back(q);
  });
}

void KVCache::reserve(const Config& c, int64_t n) {
  while (size_ < n) {
    if (owns_last_ && ext_.back().rows < ext_.back().cap) {
      const int64_t grow = std::min(ext_.back().cap - ext_.back().rows, n - size_);
      ext_.back().rows += grow;
      size_ += grow;
    } else {  // the last extent is full or shared (then a multiple of 8 rows): a new block
      const int64_t cap = std::min(next_cap_, std::max<int64_t>(8, (c.T + 7) / 8 * 8));
      ext_.push_back({pool_->take(cap), 0, cap});
      next_cap_ = std::min(2 * next_cap_, kKVMaxBlock);
      owns_last_ = true;
    }
  }
}

void KVCache::clear() {
  ext_.clear();
  size_ = 0;
  next_cap_ = kKVFirstBlock;
  owns_last_ = false;
}

KVCache KVCache::fork(const Config& c, int64_t len) const {
  KVCache child(pool_);
  const int64_t shared = len / 8 * 8;  // extents keep multiples of 8 rows
  for (const Extent& e : ext_) {
    if (child.size_ >= shared) break;
    const int64_t rows = std::min(e.rows, shared - child.size_);
    child.ext_.push_back({e.block, rows, e.cap});
    child.size_ += rows;
  }
  if (len > shared) {  // the last len % 8 rows into the child's own first block
    child.reserve(c, len);
    for (int64_t pos = shared; pos < len; ++pos)
      for (int64_t kv = 0; kv < 2; ++kv)
        for (int64_t l = 0; l < c.L; ++l)
          for (int64_t h = 0; h < c.H; ++h) std::memcpy(child.at(c, kv, l, h, pos), at(c, kv, l, h, pos), c.hd() * sizeof(float));
  }
  return child;
}

float* KVCache::at(const Config& c, int64_t kv, int64_t layer, int64_t h, int64_t pos) const {
  int64_t start = size_;
  for (size_t e = ext_.size(); e-- > 0;) {  // positions asked for are near the end
    start -= ext_[e].rows;
    if (pos >= start) {
      const int64_t slot = (2 * layer + kv) * c.H + h;
      return ext_[e].block.get() + (slot * ext_[e].cap + pos - start) * c.hd();
    }
  }
  return nullptr;  // pos < 0: never asked for
}

void KVCache::extents(std::vector<KVExtent>& out) const {
  out.clear();
  for (const Extent& e : ext_) out.push_back({e.block.get(), e.rows, e.cap});
}

}  // namespace medgym::model
