// A persistent pool of worker threads with static work partitioning.
// Work is split into the same contiguous chunks for a given thread count on every call, so results
// (including floating-point reductions done per chunk and combined in chunk order) never depend on
// timing. One parallel region runs at a time; a call made from inside a region runs serially on the
// calling thread, so kernels can call each other freely.
#pragma once
#include <cstdint>
#include <functional>

namespace medgym {

// Threads used by kernels (>= 1). Default: MEDGYM_NUM_THREADS, else the hardware concurrency.
int num_threads();
// Resizes the pool; n <= 0 restores the default. Waits for a running region to finish.
void set_num_threads(int n);

// Calls fn(tid, nthreads) once on each of nthreads threads (tid 0 is the caller) and waits.
// nthreads is min(num_threads(), max_threads) (max_threads <= 0 means no cap).
void parallel_run(const std::function<void(int tid, int nthreads)>& fn, int max_threads = 0);

// Splits [0, n) into contiguous chunks of at least min_chunk items, one per thread, and calls
// fn(begin, end) for each non-empty chunk.
void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                  int64_t min_chunk = 1);

// The chunk [begin, end) of [0, n) that thread tid of nthreads gets (balanced, contiguous).
inline void static_chunk(int64_t n, int tid, int nthreads, int64_t* begin, int64_t* end) {
  int64_t base = n / nthreads, rem = n % nthreads;
  *begin = tid * base + (tid < rem ? tid : rem);
  *end = *begin + base + (tid < rem ? 1 : 0);
}

}  // namespace medgym
