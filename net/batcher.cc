#include "net/batcher.h"

#include <algorithm>
#include <cstring>

#include "graph/partition.h"

namespace hybrid::net {
namespace {

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

Job::Job(int count_in, std::vector<std::vector<float>> inputs_in, int classes)
    : count(count_in),
      inputs(std::move(inputs_in)),
      out(static_cast<size_t>(count_in) * static_cast<size_t>(classes)) {}

bool Job::Wait(Clock::time_point deadline, const std::function<bool()>& cancelled) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Slices short enough to notice a cancelled call soon, ending at the deadline minus whole
    // slices: a client's own deadline cancels the call a transit time before ours does, and a
    // slice ending in between would report that expiry as a cancellation.
    constexpr Clock::duration kSlice = std::chrono::milliseconds(50);
    const Clock::time_point now = Clock::now();
    const Clock::duration rest = (deadline - now) % kSlice;
    const Clock::time_point until =
        std::min(deadline, now + (rest > Clock::duration::zero() ? rest : kSlice));
    if (done_.wait_until(lock, until, [&] { return state_ == State::kDone; })) return true;
    if (Clock::now() >= deadline || (cancelled && cancelled())) break;
  }
  if (state_ == State::kQueued) state_ = State::kWithdrawn;
  return false;
}

Result<std::unique_ptr<Batcher>> Batcher::Create(const std::shared_ptr<const graph::Graph>& graph,
                                                 const BatcherOptions& options,
                                                 std::function<void(const BatchReport&)> report) {
  if (options.max_batch < 1) return Error("max batch {} is not positive", options.max_batch);
  if (options.max_queue < 1) return Error("max queue {} is not positive", options.max_queue);
  if (options.workers < 1) return Error("workers {} is not positive", options.workers);
  if (options.max_queue_delay_us < 0) return Error("max queue delay is negative");
  const graph::NamedOutput* final_out = nullptr;
  for (const graph::NamedOutput& o : graph->outputs) {
    if (o.kind == graph::OutputKind::kFinal) final_out = &o;
  }
  if (final_out == nullptr) return Error("the model has no final classifier to serve");
  std::unique_ptr<Batcher> b(new Batcher());
  b->options_ = options;
  b->report_ = std::move(report);
  for (graph::TensorId t : graph::PartitionInputs(*graph, graph::Partition::kCloud)) {
    b->input_names_.push_back(graph->tensors[t].name);
    const graph::Shape& s = graph->tensors[t].shape;
    b->input_values_.push_back(graph::NumElements(graph::Shape(s.begin() + 1, s.end())));
  }
  if (b->input_names_.empty()) return Error("the model has no cloud partition to serve");
  b->classes_ = static_cast<int>(graph->tensors[final_out->tensor].shape.back());
  // Powers of two up to max_batch, and max_batch: a batch runs on the smallest plan it fits.
  std::vector<int> sizes;
  for (int s = 1; s < options.max_batch; s *= 2) sizes.push_back(s);
  sizes.push_back(options.max_batch);
  for (int w = 0; w < options.workers; ++w) {
    auto worker = std::make_unique<Worker>();
    for (int size : sizes) {
      engine::PlanOptions o;
      o.backend = options.backend;
      o.batch = size;
      o.threads = options.threads;
      o.scope = engine::Scope::kCloud;
      o.outputs = {final_out->name};
      Plan p;
      p.batch = size;
      HYBRID_ASSIGN_OR_RETURN(p.executor, engine::Executor::Create(graph, o));
      for (const std::string& name : b->input_names_) {
        HYBRID_ASSIGN_OR_RETURN(engine::TensorView v, p.executor->Tensor(name));
        p.inputs.push_back(v);
      }
      p.output = p.executor->Tensor(final_out->tensor);
      worker->plans.push_back(std::move(p));
    }
    b->workers_.push_back(std::move(worker));
  }
  for (auto& worker : b->workers_) {
    worker->thread = std::thread([raw = b.get(), w = worker.get()] { raw->Work(w); });
  }
  return b;
}

Batcher::~Batcher() { Shutdown(); }

Status Batcher::Submit(const std::shared_ptr<Job>& job) {
  if (job->count < 1) return Error("a request needs at least one sample");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Error("the server is shutting down");
    Prune();
    if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      return Error("the queue is full ({} requests wait)", queue_.size());
    }
    job->enqueued_ = Clock::now();
    queue_.push_back(job);
  }
  wake_.notify_all();
  return Status::Ok();
}

void Batcher::Prune() {
  // Requests whose callers gave up neither hold a place in the queue nor keep a batch waiting.
  const Clock::time_point now = Clock::now();
  std::erase_if(queue_, [now](const std::shared_ptr<Job>& j) {
    std::lock_guard<std::mutex> lock(j->mutex_);
    if (j->state_ == Job::State::kQueued && now >= j->expires) j->state_ = Job::State::kWithdrawn;
    return j->state_ == Job::State::kWithdrawn;
  });
}

void Batcher::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

int Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(queue_.size());
}

void Batcher::Work(Worker* worker) {
  const auto delay = std::chrono::microseconds(options_.max_queue_delay_us);
  for (;;) {
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        Prune();
        return stopping_ || !queue_.empty();
      });
      if (queue_.empty()) return;  // stopping, nothing left
      // Wait for company until the first request has waited max_queue_delay, unless a full batch
      // is already there.
      const auto samples = [&] {
        int n = 0;
        for (const auto& j : queue_) n += j->count;
        return n;
      };
      for (;;) {
        Prune();
        if (stopping_ || queue_.empty() || samples() >= options_.max_batch) break;
        const Clock::time_point until = queue_.front()->enqueued_ + delay;
        if (Clock::now() >= until) break;
        wake_.wait_until(lock, until);
      }
      if (queue_.empty()) continue;  // every request withdrawn
      int taken = 0;
      while (!queue_.empty()) {
        const std::shared_ptr<Job>& next = queue_.front();
        if (!jobs.empty() && taken + next->count > options_.max_batch) break;
        {
          std::lock_guard<std::mutex> job_lock(next->mutex_);
          if (next->state_ == Job::State::kQueued) {
            next->state_ = Job::State::kRunning;
            jobs.push_back(next);
            taken += next->count;
          }  // withdrawn: its caller has given up
        }
        queue_.pop_front();
      }
    }
    if (!jobs.empty()) Run(worker, jobs);
  }
}

void Batcher::Run(Worker* worker, const std::vector<std::shared_ptr<Job>>& jobs) {
  const Clock::time_point start = Clock::now();
  int total = 0;
  for (const auto& j : jobs) total += j->count;
  // Samples in order: (job, row) pairs, run in chunks of at most max_batch.
  Status status;
  int done_samples = 0;
  size_t job = 0;
  int row = 0;
  while (done_samples < total && status.ok()) {
    const int n = std::min(options_.max_batch, total - done_samples);
    Plan& plan = *std::find_if(worker->plans.begin(), worker->plans.end(),
                               [&](const Plan& p) { return p.batch >= n; });
    // Gather.
    size_t gj = job;
    int grow = row;
    for (int s = 0; s < n; ++s) {
      for (size_t i = 0; i < plan.inputs.size(); ++i) {
        const int64_t per = input_values_[i];
        std::memcpy(plan.inputs[i].data + s * per, jobs[gj]->inputs[i].data() + grow * per,
                    sizeof(float) * per);
      }
      if (++grow == jobs[gj]->count) {
        ++gj;
        grow = 0;
      }
    }
    for (size_t i = 0; i < plan.inputs.size(); ++i) {
      std::fill(plan.inputs[i].data + n * input_values_[i],
                plan.inputs[i].data + plan.inputs[i].size(), 0.f);
    }
    const Clock::time_point chunk_start = Clock::now();
    status = plan.executor->Run();
    if (report_) {
      report_(BatchReport{n, static_cast<int>(gj - job + (grow > 0 ? 1 : 0)),
                          std::chrono::duration<double>(Clock::now() - chunk_start).count()});
    }
    // Scatter.
    for (int s = 0; s < n && status.ok(); ++s) {
      std::memcpy(jobs[job]->out.data() + static_cast<size_t>(row) * classes_,
                  plan.output.data + static_cast<int64_t>(s) * classes_, sizeof(float) * classes_);
      if (++row == jobs[job]->count) {
        ++job;
        row = 0;
      }
    }
    done_samples += n;
  }
  const Clock::time_point end = Clock::now();
  for (const auto& j : jobs) {
    std::lock_guard<std::mutex> lock(j->mutex_);
    j->status = status;
    j->queue_us = Micros(j->enqueued_, start);
    j->compute_us = Micros(start, end);
    j->batch_size = std::min(total, options_.max_batch);
    j->state_ = Job::State::kDone;
    j->done_.notify_all();
  }
}

}  // namespace hybrid::net
