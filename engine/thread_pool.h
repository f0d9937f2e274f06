// A fixed set of worker threads (pthreadpool) shared by the backends of one executor.
#pragma once

#include <pthreadpool.h>

#include <cstddef>

namespace hybrid::engine {

class ThreadPool {
 public:
  // threads <= 0 means one per core.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  pthreadpool_t get() const { return pool_; }

  // Calls f(begin, end) on disjoint ranges covering [0, n), `tile` items at a time; allocates
  // nothing, so it may run inside Executor::Run.
  template <typename F>
  void ParallelFor(size_t n, size_t tile, F& f) {
    if (n == 0) return;
    if (pool_ == nullptr || n <= tile) {
      f(size_t{0}, n);
      return;
    }
    Job<F> job{&f, n};
    pthreadpool_parallelize_1d_tile_1d(pool_, &Job<F>::Call, &job, n, tile, 0);
  }

 private:
  template <typename F>
  struct Job {
    F* f;
    size_t n;
    static void Call(void* context, size_t start, size_t count) {
      auto* job = static_cast<Job*>(context);
      (*job->f)(start, start + count);
    }
  };
  int threads_ = 1;
  pthreadpool_t pool_ = nullptr;  // null when single-threaded
};

// Number of cores this process may run on.
int AvailableCores();

}  // namespace hybrid::engine
