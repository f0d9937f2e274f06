// Dynamic batching of inference requests for one model's cloud partition: requests wait in a
// bounded queue; a worker takes the first and, for up to max_queue_delay, more, up to max_batch
// samples, runs them as one batch and hands each request its rows. Plans for every batch size the
// worker may run (powers of two up to max_batch) are made before the first request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "engine/executor.h"
#include "graph/ir.h"

namespace hybrid::net {

struct BatcherOptions {
  std::string backend = "onednn";
  int max_batch = 32;                // samples per batch; 1 turns batching off
  int64_t max_queue_delay_us = 500;  // how long a batch's first request waits for company
  int max_queue = 256;               // requests waiting; more are refused
  int workers = 1;                   // batches computed at once, each on its own plans
  int threads = 0;                   // threads of each worker (0: every core)
};

using Clock = std::chrono::steady_clock;

// One request: its samples' inputs (per cloud input, count * values floats) and, once done, its
// rows of probabilities.
class Job {
 public:
  Job(int count, std::vector<std::vector<float>> inputs, int classes);

  // Waits until the job is done, `deadline` passes or `cancelled` (polled) says the caller is
  // gone. Returns true when done; otherwise the job is withdrawn if it has not started, or
  // finishes unseen.
  bool Wait(Clock::time_point deadline, const std::function<bool()>& cancelled = {});

  const int count;
  const std::vector<std::vector<float>> inputs;
  // Set before Submit: past it, a job still queued is dropped, so a caller that has given up
  // frees its place in the queue even before its handler notices.
  Clock::time_point expires = Clock::time_point::max();
  std::vector<float> out;  // count * classes
  // Set when done.
  Status status;
  double queue_us = 0, compute_us = 0;
  int batch_size = 0;  // samples in the batch that computed it

 private:
  friend class Batcher;
  enum class State { kQueued, kRunning, kDone, kWithdrawn };
  std::mutex mutex_;
  std::condition_variable done_;
  State state_ = State::kQueued;
  Clock::time_point enqueued_;
};

// What the batcher reports for each batch it computes (for metrics): its samples, the requests
// they came from (counting one split across batches in each) and the time the plan ran.
struct BatchReport {
  int samples = 0, requests = 0;
  double compute_seconds = 0;
};

class Batcher {
 public:
  // Plans the cloud partition of `graph` for every batch size a worker may run.
  static Result<std::unique_ptr<Batcher>> Create(const std::shared_ptr<const graph::Graph>& graph,
                                                 const BatcherOptions& options,
                                                 std::function<void(const BatchReport&)> report);
  ~Batcher();

  // Queues a job; an error when max_queue jobs wait already or the batcher is stopping.
  Status Submit(const std::shared_ptr<Job>& job);
  // Computes what is queued, then stops the workers. Later submissions are refused.
  void Shutdown();

  int queued() const;
  const std::vector<std::string>& input_names() const { return input_names_; }
  int classes() const { return classes_; }

 private:
  struct Plan {
    int batch = 0;
    std::unique_ptr<engine::Executor> executor;
    std::vector<engine::TensorView> inputs;
    engine::TensorView output;
  };
  struct Worker {
    std::vector<Plan> plans;  // by increasing batch
    std::thread thread;
  };

  Batcher() = default;
  void Work(Worker* worker);
  void Prune();  // expects mutex_ held
  void Run(Worker* worker, const std::vector<std::shared_ptr<Job>>& jobs);

  BatcherOptions options_;
  std::function<void(const BatchReport&)> report_;
  std::vector<std::string> input_names_;
  std::vector<int64_t> input_values_;  // per sample
  int classes_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
};

}  // namespace hybrid::net
