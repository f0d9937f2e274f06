#include "engine/thread_pool.h"

#include <sched.h>

#include <thread>

namespace hybrid::engine {

int AvailableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

ThreadPool::ThreadPool(int threads) : threads_(threads > 0 ? threads : AvailableCores()) {
  if (threads_ > 1) pool_ = pthreadpool_create(static_cast<size_t>(threads_));
  if (pool_ == nullptr) threads_ = 1;
}

ThreadPool::~ThreadPool() {
  if (pool_ != nullptr) pthreadpool_destroy(pool_);
}

}  // namespace hybrid::engine
