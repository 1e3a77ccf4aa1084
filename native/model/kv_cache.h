// Paged KV cache of a generation sequence (SPEC §7 sessions).
//
// Rows live in blocks. A block of `cap` rows holds 2·L·H slots of cap rows of hd floats: slot
// (2l)·H + h the K rows of layer l, head h; slot (2l + 1)·H + h their V rows (a head's rows
// contiguous, as attention_decode_paged streams them). A cache is a list of extents (rows 0..r-1 of
// a block) in position order. A sequence's own blocks grow geometrically (kKVFirstBlock rows, then
// twice the previous, up to kKVMaxBlock): no reallocation, no copy, at most 2× the rows in use, and a
// long context is read in long contiguous runs. Rows are only written at the end, so written rows
// never change: fork() shares every extent of the parent (its partial last block too, down to a
// multiple of 8 rows) and copies at most 7 rows into the child's first own block; only the owner of
// a last block appends to it, so siblings never see each other's rows. Every extent but the last
// holds a multiple of 8 rows, which is what makes attention_decode_paged's arithmetic independent of
// the extents (a forked sequence computes exactly what a copy would). Blocks come from a pool shared
// by a session's sequences (slabs on huge pages): a steady decode loop neither allocates nor
// page-faults.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cpu/attention_decode.h"
#include "model/config.h"

namespace medgym::model {

// Own blocks: 64 rows first (a forked child may write only a few dozen), doubling to 1024 (a head's
// rows of a block then span up to 128 KiB at hd 32, read as one stream: 64-row blocks measured
// ~1.5× slower than contiguous rows on 600-position contexts).
constexpr int64_t kKVFirstBlock = 64;
constexpr int64_t kKVMaxBlock = 1024;

class KVPool : public std::enable_shared_from_this<KVPool> {
 public:
  explicit KVPool(const Config& c) : floats_per_row_(2 * c.L * c.d) {}
  ~KVPool();
  KVPool(const KVPool&) = delete;
  KVPool& operator=(const KVPool&) = delete;
  // A block of `cap` rows (contents undefined); it returns to the pool when its last owner lets go.
  std::shared_ptr<float> take(int64_t cap);
  // Bytes of the slabs allocated so far (kept until the pool goes): what the caches really hold,
  // shared blocks counted once.
  int64_t bytes() const { return bytes_.load(); }

 private:
  // Blocks are carved from 2 MiB-aligned slabs advised as huge pages: decode attention streams
  // thousands of 4 KiB pages per step otherwise (TLB misses measured 1.3x the kernel's time).
  static constexpr size_t kSlabBytes = size_t(2) << 20;
  const int64_t floats_per_row_;
  std::mutex mu_;
  std::map<int64_t, std::vector<float*>> free_;  // by cap
  std::vector<void*> slabs_;
  std::atomic<int64_t> bytes_{0};
};

struct AcceleratorCache;  // model/accelerator.h

class KVCache {
 public:
  KVCache() = default;
  explicit KVCache(std::shared_ptr<KVPool> pool) : pool_(std::move(pool)) {}

  int64_t size() const { return size_; }
  // Room for positions [size(), n): grows the owned last block, then appends new blocks.
  void reserve(const Config& c, int64_t n);
  void clear();
  // A cache holding the first `len` positions of this one (len <= size()), sharing its blocks.
  KVCache fork(const Config& c, int64_t len) const;

  // The K (kv = 0) or V (kv = 1) row of layer l, head h at a position < size().
  float* at(const Config& c, int64_t kv, int64_t layer, int64_t h, int64_t pos) const;
  // The extents in position order, for attention_decode_paged; `out` is overwritten.
  void extents(std::vector<KVExtent>& out) const;
  // The PagedKV slots of layer l's K and V rows (head 0).
  static int64_t k_slot(const Config& c, int64_t layer) { return 2 * layer * c.H; }
  static int64_t v_slot(const Config& c, int64_t layer) { return (2 * layer + 1) * c.H; }

  // The device's cache instead of these blocks, when the model has an accelerator (model/gpu).
  std::shared_ptr<AcceleratorCache> accel;

 private:
  struct Extent {
    std::shared_ptr<float> block;
    int64_t rows, cap;
  };

  std::shared_ptr<KVPool> pool_;
  std::vector<Extent> ext_;
  int64_t size_ = 0;        // positions (reserved rows included)
  int64_t next_cap_ = kKVFirstBlock;
  bool owns_last_ = false;  // the last extent's block is this cache's to append to
};

}  // namespace medgym::model
