// Dynamic batching: every request gets exactly the rows a plan of its own would compute, whatever
// batch it joins; requests wait for company up to the delay, a full queue refuses, a withdrawn
// request is skipped, and shutdown computes what is queued.
#include "net/batcher.h"

#include <gtest/gtest.h>

#include <mutex>
#include <random>
#include <thread>

#include "tests/graph/test_graphs.h"

namespace hybrid::net {
namespace {

using std::chrono::milliseconds;

std::shared_ptr<const graph::Graph> Model() {
  return std::make_shared<const graph::Graph>(graph::testing::TinyHybridGraph());
}

constexpr int64_t kValues = 8 * 8 * 4;  // the cloud reads relu1, [8, 8, 4] per sample
constexpr int kClasses = 3;

std::shared_ptr<Job> MakeJob(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.f, 2.f);
  std::vector<float> x(static_cast<size_t>(count * kValues));
  for (float& v : x) v = d(rng);
  return std::make_shared<Job>(count, std::vector<std::vector<float>>{std::move(x)}, kClasses);
}

// The cloud partition on a plan of the job's own size.
std::vector<float> Direct(const std::shared_ptr<const graph::Graph>& g, const Job& job,
                          const std::string& backend) {
  engine::PlanOptions o;
  o.backend = backend;
  o.batch = job.count;
  o.scope = engine::Scope::kCloud;
  o.outputs = {"final"};
  auto ex = engine::Executor::Create(g, o);
  EXPECT_TRUE(ex.ok()) << ex.message();
  std::copy(job.inputs[0].begin(), job.inputs[0].end(), (*ex)->Tensor("relu1")->data);
  EXPECT_TRUE((*ex)->Run().ok());
  const engine::TensorView out = (*ex)->Tensor(g->FindOutput("final")->tensor);
  return std::vector<float>(out.data, out.data + out.size());
}

struct Reports {
  std::mutex mutex;
  std::vector<int> sizes;
  std::function<void(const BatchReport&)> Callback() {
    return [this](const BatchReport& r) {
      std::lock_guard<std::mutex> lock(mutex);
      sizes.push_back(r.samples);
    };
  }
};

class BatcherBackends : public ::testing::TestWithParam<std::string> {};

TEST_P(BatcherBackends, EveryRequestGetsItsOwnRowsWhateverTheBatch) {
  auto g = Model();
  BatcherOptions o;
  o.backend = GetParam();
  o.max_batch = 4;
  o.max_queue_delay_us = 2000;
  o.workers = 2;
  o.threads = 1;
  Reports reports;
  auto b = Batcher::Create(g, o, reports.Callback());
  ASSERT_TRUE(b.ok()) << b.message();
  // Sizes below, at and above max_batch (computed in chunks), from several threads at once.
  const std::vector<int> counts = {1, 3, 2, 4, 7, 1, 1, 5, 2, 9};
  std::vector<std::shared_ptr<Job>> jobs;
  jobs.reserve(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) jobs.push_back(MakeJob(counts[i], 100 + i));
  std::vector<std::thread> threads;
  threads.reserve(jobs.size());
  for (const auto& job : jobs) {
    threads.emplace_back([&, job] {
      ASSERT_TRUE((*b)->Submit(job).ok());
      ASSERT_TRUE(job->Wait(Clock::now() + std::chrono::seconds(30)));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& job : jobs) {
    ASSERT_TRUE(job->status.ok()) << job->status.message();
    const std::vector<float> want = Direct(g, *job, GetParam());
    ASSERT_EQ(job->out.size(), want.size());
    for (size_t j = 0; j < want.size(); ++j) ASSERT_EQ(job->out[j], want[j]) << j;
    EXPECT_GE(job->batch_size, 1);
    EXPECT_LE(job->batch_size, 4);
  }
  int samples = 0;
  for (int s : reports.sizes) {
    EXPECT_LE(s, 4);
    samples += s;
  }
  EXPECT_EQ(samples, 35);
}

INSTANTIATE_TEST_SUITE_P(Backends, BatcherBackends, ::testing::Values("ref", "onednn", "native"));

TEST(Batcher, RequestsWaitForCompanyUpToTheDelay) {
  auto g = Model();
  BatcherOptions o;
  o.backend = "ref";
  o.max_batch = 8;
  o.max_queue_delay_us = 300000;  // long enough for five submissions to arrive together
  Reports reports;
  auto b = Batcher::Create(g, o, reports.Callback());
  ASSERT_TRUE(b.ok());
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(MakeJob(1, i));
    ASSERT_TRUE((*b)->Submit(jobs.back()).ok());
  }
  for (auto& j : jobs) ASSERT_TRUE(j->Wait(Clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(reports.sizes, std::vector<int>{5});
  EXPECT_EQ(jobs[0]->batch_size, 5);
  EXPECT_GT(jobs[0]->queue_us, 100000);  // it waited for the others

  // A full batch does not wait for the delay.
  reports.sizes.clear();
  jobs.clear();
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 8; ++i) {
    jobs.push_back(MakeJob(1, 10 + i));
    ASSERT_TRUE((*b)->Submit(jobs.back()).ok());
  }
  for (auto& j : jobs) ASSERT_TRUE(j->Wait(Clock::now() + std::chrono::seconds(10)));
  EXPECT_LT(Clock::now() - start, milliseconds(250));
  int samples = 0;
  for (int s : reports.sizes) samples += s;
  EXPECT_EQ(samples, 8);

  // Batching off: one request per batch.
  o.max_batch = 1;
  o.max_queue_delay_us = 0;
  Reports single;
  auto unbatched = Batcher::Create(g, o, single.Callback());
  ASSERT_TRUE(unbatched.ok());
  jobs.clear();
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(MakeJob(1, 20 + i));
    ASSERT_TRUE((*unbatched)->Submit(jobs.back()).ok());
  }
  for (auto& j : jobs) ASSERT_TRUE(j->Wait(Clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(single.sizes, (std::vector<int>{1, 1, 1, 1}));
}

TEST(Batcher, AFullQueueRefusesAndShutdownComputesWhatWaits) {
  auto g = Model();
  BatcherOptions o;
  o.backend = "ref";
  o.max_batch = 100;
  o.max_queue_delay_us = 5000000;  // the first requests wait in the queue for company
  o.max_queue = 2;
  auto b = Batcher::Create(g, o, nullptr);
  ASSERT_TRUE(b.ok());
  auto first = MakeJob(1, 1), second = MakeJob(2, 2), third = MakeJob(1, 3);
  ASSERT_TRUE((*b)->Submit(first).ok());
  ASSERT_TRUE((*b)->Submit(second).ok());
  const Status full = (*b)->Submit(third);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.message().find("queue is full (2 requests wait)"), std::string::npos);
  EXPECT_EQ((*b)->queued(), 2);
  // A request whose caller gives up before its batch starts is withdrawn and never computed.
  EXPECT_FALSE(second->Wait(Clock::now() + milliseconds(20)));
  // A queued request past its deadline frees its place though nobody waits on it.
  third->expires = Clock::now();
  ASSERT_TRUE((*b)->Submit(third).ok());
  auto fourth = MakeJob(1, 4);
  ASSERT_TRUE((*b)->Submit(fourth).ok());
  EXPECT_EQ((*b)->queued(), 2);  // first and fourth
  (*b)->Shutdown();
  EXPECT_TRUE(first->Wait(Clock::now()));
  EXPECT_TRUE(first->status.ok());
  EXPECT_EQ(first->out, Direct(g, *first, "ref"));
  EXPECT_EQ(second->batch_size, 0);
  EXPECT_TRUE(fourth->Wait(Clock::now()));
  EXPECT_EQ(third->batch_size, 0);
  const Status after = (*b)->Submit(MakeJob(1, 5));
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.message().find("shutting down"), std::string::npos);
}

// The server's deadline is the client's plus the request's transit, and the client cancels when
// its own passes: a cancellation in the last 50 ms is noticed only at the deadline, so the
// expiry is reported as one. (Slices counted from the start would poll at 50 and 100 ms here,
// after the cancellation at 98; deadline-aligned ones at 4, 54 and 104, which leaves a loaded
// machine 44 ms to wake the second poll.)
TEST(Job, ACancellationJustBeforeTheDeadlineIsNoticedAtTheDeadline) {
  auto job = MakeJob(1, 1);
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + milliseconds(104);
  const Clock::time_point cancel = deadline - milliseconds(6);
  EXPECT_FALSE(job->Wait(deadline, [&] { return Clock::now() >= cancel; }));
  EXPECT_GE(Clock::now(), deadline);
  // A cancellation earlier than a slice before the deadline is noticed before it.
  auto early = MakeJob(1, 2);
  const Clock::time_point far = Clock::now() + std::chrono::seconds(30);
  const Clock::time_point gone = Clock::now() + milliseconds(10);
  EXPECT_FALSE(early->Wait(far, [&] { return Clock::now() >= gone; }));
  EXPECT_LT(Clock::now(), far - std::chrono::seconds(20));
}

TEST(Batcher, BadOptionsAndRequestsAreRefused) {
  auto g = Model();
  BatcherOptions o;
  o.max_batch = 0;
  EXPECT_FALSE(Batcher::Create(g, o, nullptr).ok());
  o = BatcherOptions{};
  o.max_queue = 0;
  EXPECT_FALSE(Batcher::Create(g, o, nullptr).ok());
  o = BatcherOptions{};
  o.backend = "ref";
  auto b = Batcher::Create(g, o, nullptr);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->input_names(), std::vector<std::string>{"relu1"});
  EXPECT_EQ((*b)->classes(), kClasses);
  EXPECT_FALSE((*b)->Submit(std::make_shared<Job>(0, std::vector<std::vector<float>>{{}}, 3)).ok());
}

}  // namespace
}  // namespace hybrid::net
