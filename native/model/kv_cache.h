// Paged KV cache of a generation sequence (SPEC §7 sessions).
//
// Rows live in blocks of kKVBlock positions. A block holds, for every layer l, K then V, each
// head-major [H, kKVBlock, hd] (a head's rows contiguous, as attention_decode_paged reads them):
//   K of (layer l, head h, block row r) at block + 2l·kKVBlock·d + h·kKVBlock·hd + r·hd,
//   V likewise at (2l + 1)·kKVBlock·d.
// A cache is a list of extents, each rows 0..rows-1 of one block, in position order. Rows are only
// ever written at the end, so a block's written rows never change: fork() shares every extent of the
// prompt (the partial last block too, down to a multiple of 8 rows) and copies at most 7 rows into
// the child's first own block; only the owner of the last block appends to it, so siblings never see
// each other's rows. Every extent but the last holds a multiple of 8 rows, which is what makes
// attention_decode_paged's arithmetic independent of the extents (a forked sequence computes exactly
// what a copy would). Growing appends blocks: no reallocation, no copy. Blocks come from a pool shared
// by a session's sequences, so a steady decode loop neither allocates nor page-faults.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "cpu/attention_decode.h"
#include "model/config.h"

namespace medgym::model {

// 128 rows: a head's rows of a block are 16 KiB at hd 32 (decode attention streams them; 64-row
// blocks measured ~25 % slower on long contexts), and a block is 512 KiB (tiny) to 2.3 MiB (small).
constexpr int64_t kKVBlock = 128;

class KVPool : public std::enable_shared_from_this<KVPool> {
 public:
  explicit KVPool(const Config& c) : floats_(2 * c.L * kKVBlock * c.d) {}
  ~KVPool();
  KVPool(const KVPool&) = delete;
  KVPool& operator=(const KVPool&) = delete;
  // A block (contents undefined); it returns to the pool when its last owner lets go.
  std::shared_ptr<float> take();

 private:
  const int64_t floats_;
  std::mutex mu_;
  std::vector<float*> free_;
};

class KVCache {
 public:
  KVCache() = default;
  explicit KVCache(std::shared_ptr<KVPool> pool) : pool_(std::move(pool)) {}

  int64_t size() const { return size_; }
  // Room for positions [size(), n): grows the owned last block, then appends new blocks.
  void reserve(int64_t n);
  void clear();
  // A cache holding the first `len` positions of this one (len <= size()), sharing its blocks.
  KVCache fork(const Config& c, int64_t len) const;

  // K / V row of head 0 at a position < size() (head h is KVCache::head_stride(c) floats further).
  float* k(const Config& c, int64_t layer, int64_t pos) const { return row(c, 2 * layer, pos); }
  float* v(const Config& c, int64_t layer, int64_t pos) const { return row(c, 2 * layer + 1, pos); }
  // The extents (block, rows) in position order, for attention_decode_paged; `out` is overwritten.
  void extents(std::vector<KVExtent>& out) const;
  static int64_t k_offset(const Config& c, int64_t layer) { return 2 * layer * kKVBlock * c.d; }
  static int64_t v_offset(const Config& c, int64_t layer) { return (2 * layer + 1) * kKVBlock * c.d; }
  static int64_t head_stride(const Config& c) { return kKVBlock * c.hd(); }

 private:
  struct Extent {
    std::shared_ptr<float> block;
    int64_t rows;
  };
  float* row(const Config& c, int64_t slot, int64_t pos) const;

  std::shared_ptr<KVPool> pool_;
  std::vector<Extent> ext_;
  int64_t size_ = 0;       // positions (reserved rows included)
  bool owns_last_ = false;  // the last extent's block is this cache's to append to
};

}  // namespace medgym::model
