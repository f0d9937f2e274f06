// Executor overhead: whole-graph latency of a small ResNet at batch 1 on the onednn backend,
// against the very same oneDNN primitives executed back to back with no executor around them.
// Prints the ratio of the medians; the goal is at most 1.10.
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>

#include "engine/executor.h"
#include "engine/onednn_call.h"
#include "graph/builder.h"

extern "C" void omp_set_num_threads(int);

namespace hybrid {
namespace {

using graph::GraphBuilder;
using graph::OpType;
using graph::TensorId;

std::vector<float> Random(size_t n, std::mt19937& rng, float lo = -0.3f, float hi = 0.3f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A ResNet-8-style network on 28x28x1 images: stem, two blocks at 16 channels, a stride-2
// transition and a block at 32 channels, global pooling, a classifier.
std::shared_ptr<const graph::Graph> SmallResNet() {
  std::mt19937 rng(1);
  GraphBuilder b("small_resnet");
  int n = 0;
  auto conv = [&](TensorId x, int ci, int co, int stride) {
    graph::Conv2dAttrs a;
    a.kernel_h = a.kernel_w = 3;
    a.stride_h = a.stride_w = stride;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
    std::string name = "conv" + std::to_string(n++);
    return b.Conv2d(name, x, b.Constant(name + ".w", {co, 3, 3, ci}, Random(co * 9 * ci, rng)),
                    b.Constant(name + ".b", {co}, Random(co, rng)), a);
  };
  auto bn = [&](TensorId x, int c) {
    std::string name = "bn" + std::to_string(n++);
    return b.BatchNorm(name, x, b.Constant(name + ".g", {c}, Random(c, rng, 0.8f, 1.2f)),
                       b.Constant(name + ".b", {c}, Random(c, rng)),
                       b.Constant(name + ".m", {c}, Random(c, rng)),
                       b.Constant(name + ".v", {c}, Random(c, rng, 0.5f, 1.5f)));
  };
  auto relu = [&](TensorId x) { return b.Op("relu" + std::to_string(n++), OpType::kRelu, {x}); };
  auto block = [&](TensorId x, int c) {
    TensorId h = relu(bn(conv(x, c, c, 1), c));
    h = bn(conv(h, c, c, 1), c);
    return relu(b.Op("add" + std::to_string(n++), OpType::kAdd, {x, h}));
  };
  TensorId x = b.Input("image", {28, 28, 1});
  TensorId h = relu(bn(conv(x, 1, 16, 1), 16));
  h = block(block(h, 16), 16);
  h = relu(bn(conv(h, 16, 32, 2), 32));
  h = block(h, 32);
  h = b.Op("gap", OpType::kGlobalAvgPool, {h});
  h = b.Dense("fc", h, b.Constant("fc.w", {10, 32}, Random(320, rng)),
              b.Constant("fc.b", {10}, Random(10, rng)));
  b.Output("final", b.Op("softmax", OpType::kSoftmax, {h}), graph::OutputKind::kFinal);
  return std::make_shared<const graph::Graph>(std::move(b).Build().value());
}

std::unique_ptr<engine::Executor> Plan(const std::string& backend, int threads) {
  engine::PlanOptions o;
  o.backend = backend;
  o.threads = threads;
  o.fallback = false;
  auto e = engine::Executor::Create(SmallResNet(), o);
  if (!e.ok()) {
    std::fprintf(stderr, "error: %s\n", e.message().c_str());
    std::exit(1);
  }
  std::mt19937 rng(2);
  auto input = Random(28 * 28, rng, -1.f, 1.f);
  if (!(*e)->SetInput("image", input).ok() || !(*e)->Run().ok()) std::exit(1);
  return std::move(e).value();
}

void BM_Executor(benchmark::State& state, const std::string& backend) {
  auto e = Plan(backend, static_cast<int>(state.range(0)));
  for (auto _ : state) {
    if (!e->Run().ok()) state.SkipWithError("run failed");
  }
}

// The executor's own primitives, bound to the same buffers, run by a bare loop.
void BM_OneDnnPrimitives(benchmark::State& state) {
  auto e = Plan("onednn", static_cast<int>(state.range(0)));
  std::vector<engine::OneDnnCall> calls;
  for (const auto& k : e->kernels()) {
    if (auto call = engine::OneDnnCallOf(*k)) calls.push_back(*call);
  }
  omp_set_num_threads(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    for (const engine::OneDnnCall& c : calls) {
      dnnl_primitive_execute(c.primitive, c.stream, static_cast<int>(c.args->size()),
                             c.args->data());
    }
    dnnl_stream_wait(calls.front().stream);
  }
  state.counters["primitives"] = static_cast<double>(calls.size());
}

BENCHMARK(BM_OneDnnPrimitives)->ArgName("threads")->Arg(1)->Arg(2);
BENCHMARK_CAPTURE(BM_Executor, onednn, "onednn")->ArgName("threads")->Arg(1)->Arg(2);
BENCHMARK_CAPTURE(BM_Executor, xnnpack, "xnnpack")->ArgName("threads")->Arg(1)->Arg(2);
BENCHMARK_CAPTURE(BM_Executor, ref, "ref")->ArgName("threads")->Arg(1)->Arg(2);

// Keeps each benchmark's median real time (or its only run) for the ratio printed at the end.
class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      median_[r.run_name.str()] = r.GetAdjustedRealTime();
    }
  }
  const std::map<std::string, double>& median() const { return median_; }

 private:
  std::map<std::string, double> median_;
};

}  // namespace
}  // namespace hybrid

int main(int argc, char** argv) {
  // Medians of several repetitions by default: the machine is shared and noisy.
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=7";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  bool has_reps = false;
  for (int i = 1; i < argc; ++i)
    has_reps |= std::string(argv[i]).rfind("--benchmark_repetitions", 0) == 0;
  if (!has_reps) {
    args.push_back(reps.data());
    args.push_back(aggregates.data());
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  hybrid::MedianReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const auto& m = reporter.median();
  std::printf(
      "\nexecutor overhead on onednn (median executor / median bare primitives; goal <= 1.10)\n");
  for (const char* t : {"1", "2"}) {
    auto ex = m.find(std::string("BM_Executor/onednn/threads:") + t);
    auto raw = m.find(std::string("BM_OneDnnPrimitives/threads:") + t);
    if (ex == m.end() || raw == m.end()) continue;
    std::printf("  threads %s: %.3f us vs %.3f us  ratio %.3f\n", t, ex->second / 1e3,
                raw->second / 1e3, ex->second / raw->second);
  }
  return 0;
}
