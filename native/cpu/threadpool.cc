#include "cpu/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace medgym {

namespace {

thread_local bool t_in_region = false;

int default_threads() {
  if (const char* s = std::getenv("MEDGYM_NUM_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return std::min(n, 1024);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

class Pool {
 public:
  explicit Pool(int n) { resize_locked(n); }
  ~Pool() { stop_workers(); }

  int size() const { return size_; }

  void resize(int n) {
    std::lock_guard<std::mutex> region(region_mu_);
    resize_locked(n);
  }

  void run(const std::function<void(int, int)>& fn, int nthreads) {
    std::lock_guard<std::mutex> region(region_mu_);
    nthreads = std::max(1, std::min(nthreads, size_));
    if (nthreads == 1) {
      t_in_region = true;
      try { fn(0, 1); } catch (...) { t_in_region = false; throw; }
      t_in_region = false;
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      job_threads_ = nthreads;
      pending_.store(nthreads - 1);
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    t_in_region = true;
    try { fn(0, nthreads); } catch (...) { record_error(std::current_exception()); }
    t_in_region = false;
    // Spin briefly (regions are often short), then sleep until the workers are done.
    for (int i = 0; i < 20000 && pending_.load(std::memory_order_acquire) != 0; ++i) {}
    {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return pending_.load() == 0; });
      job_ = nullptr;
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void record_error(std::exception_ptr e) {
    std::lock_guard<std::mutex> lk(err_mu_);
    if (!error_) error_ = e;
  }

  // `seen` starts at the generation current when the worker is created: a worker started by a
  // resize must not run the (finished, nulled) job of an earlier region.
  void worker(int tid, uint64_t seen) {
    for (;;) {
      const std::function<void(int, int)>* job;
      int nthreads;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        nthreads = job_threads_;
      }
      if (tid >= nthreads) continue;
      t_in_region = true;
      try { (*job)(tid, nthreads); } catch (...) { record_error(std::current_exception()); }
      t_in_region = false;
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    stop_ = false;
  }

  void resize_locked(int n) {
    n = std::max(1, n);
    if (n == size_) return;
    stop_workers();
    size_ = n;
    for (int tid = 1; tid < n; ++tid) threads_.emplace_back([this, tid, gen = generation_] { worker(tid, gen); });
  }

  std::mutex region_mu_;  // one parallel region at a time (async calls may come from several threads)
  std::mutex mu_, err_mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  int size_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
  static Pool* p = new Pool(default_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(n > 0 ? n : default_threads()); }

void parallel_run(const std::function<void(int, int)>& fn, int max_threads) {
  int n = num_threads();
  if (max_threads > 0) n = std::min(n, max_threads);
  if (t_in_region || n <= 1) {
    bool outer = t_in_region;
    t_in_region = true;
    try { fn(0, 1); } catch (...) { t_in_region = outer; throw; }
    t_in_region = outer;
    return;
  }
  pool().run(fn, n);
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  int64_t max_threads = std::max<int64_t>(1, n / min_chunk);
  parallel_run(
      [&](int tid, int nthreads) {
        int64_t b, e;
        static_chunk(n, tid, nthreads, &b, &e);
        if (b < e) fn(b, e);
      },
      static_cast<int>(std::min<int64_t>(max_threads, 1 << 20)));
}

}  // namespace medgym
