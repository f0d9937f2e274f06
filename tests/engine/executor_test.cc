#include "engine/executor.h"

#include <gtest/gtest.h>

#include <random>

#include "graph/builder.h"
#include "graph/partition.h"
#include "tests/engine/alloc_counter.h"

namespace hybrid::engine {
namespace {

using graph::GraphBuilder;
using graph::OpType;
using graph::TensorId;

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A small residual network split after its first block; every op of the IR appears.
std::shared_ptr<const graph::Graph> ResidualGraph(graph::Precision edge_precision) {
  GraphBuilder b("residual");
  TensorId x = b.Input("image", {9, 9, 3});
  graph::Conv2dAttrs c;
  c.kernel_h = c.kernel_w = 3;
  c.pad_top = c.pad_bottom = c.pad_left = c.pad_right = 1;
  auto conv = [&](const std::string& name, TensorId in, int ci, int co, graph::Conv2dAttrs a) {
    return b.Conv2d(name, in,
                    b.Constant(name + ".w", {co, a.kernel_h, a.kernel_w, ci / a.groups},
                               Random(co * a.kernel_h * a.kernel_w * ci / a.groups, co)),
                    b.Constant(name + ".b", {co}, Random(co, 7)), a);
  };
  TensorId h = b.Op("relu0", OpType::kRelu, {conv("conv0", x, 3, 8, c)});
  graph::Conv2dAttrs q = c;
  q.quant.weight_precision = q.quant.activation_precision = edge_precision;
  q.pad_value = edge_precision == graph::Precision::kBinary ? 1.f : 0.f;
  std::vector<float> gamma(8, 1.1f), beta(8, 0.1f), mean(8, 0.05f), var(8, 0.9f);
  TensorId bn = b.BatchNorm("bn1", conv("conv1", h, 8, 8, q), b.Constant("g", {8}, gamma),
                            b.Constant("be", {8}, beta), b.Constant("m", {8}, mean),
                            b.Constant("v", {8}, var));
  h = b.Op("add1", OpType::kAdd, {h, b.Hardtanh("ht1", bn, -1.f, 1.f)});
  graph::Pool2dAttrs p;
  p.kernel_h = p.kernel_w = 2;
  p.stride_h = p.stride_w = 2;
  h = b.Pool("pool1", OpType::kMaxPool2d, h, p);
  TensorId e = b.Op("exit.gap", OpType::kGlobalAvgPool, {h});
  b.Output("exit",
           b.Op("exit.sm", OpType::kSoftmax,
                {b.Dense("exit.fc", e, b.Constant("ew", {4, 8}, Random(32, 3)), -1)}),
           graph::OutputKind::kExit);
  b.SetPartition(graph::Partition::kCloud);
  graph::Conv2dAttrs dw = c;
  dw.groups = 8;
  dw.stride_h = dw.stride_w = 2;
  TensorId d =
      b.Prelu("prelu2", conv("conv2", h, 8, 8, dw), b.Constant("slope", {8}, Random(8, 4)));
  TensorId s = b.Op("sign2", OpType::kSign, {d});
  graph::Pool2dAttrs ap;
  ap.kernel_h = ap.kernel_w = 2;
  ap.pad_top = ap.pad_left = 1;
  TensorId a = b.Pool("avg2", OpType::kAvgPool2d, s, ap);
  TensorId cat = b.Concat("cat", {a, a}, 3);
  TensorId f = b.Op("flat", OpType::kFlatten, {cat});
  TensorId fc = b.Dense("fc", f, b.Constant("fw", {4, 2 * 2 * 16}, Random(4 * 64, 5)),
                        b.Constant("fb", {4}, Random(4, 6)));
  b.Output("final", b.Op("final.sm", OpType::kSoftmax, {fc}), graph::OutputKind::kFinal);
  auto g = std::move(b).Build();
  EXPECT_TRUE(g.ok()) << g.message();
  return std::make_shared<const graph::Graph>(std::move(g).value());
}

std::unique_ptr<Executor> Plan(std::shared_ptr<const graph::Graph> g, PlanOptions o) {
  auto e = Executor::Create(std::move(g), o);
  EXPECT_TRUE(e.ok()) << e.message();
  return e.ok() ? std::move(e).value() : nullptr;
}

TEST(Executor, EdgeThenCloudEqualsWholeGraph) {
  for (auto precision :
       {graph::Precision::kF32, graph::Precision::kBinary, graph::Precision::kInt2}) {
    auto g = ResidualGraph(precision);
    PlanOptions o;
    o.batch = 2;
    auto all = Plan(g, o);
    o.scope = Scope::kEdge;
    auto edge = Plan(g, o);
    o.scope = Scope::kCloud;
    auto cloud = Plan(g, o);
    ASSERT_TRUE(all && edge && cloud);
    std::vector<float> input = Random(2 * 9 * 9 * 3, 11);
    ASSERT_TRUE(all->SetInput("image", input).ok());
    ASSERT_TRUE(edge->SetInput("image", input).ok());
    ASSERT_TRUE(all->Run().ok());
    ASSERT_TRUE(edge->Run().ok());
    ASSERT_EQ(cloud->inputs().size(), 1u);
    std::string boundary = g->tensors[cloud->inputs()[0]].name;
    EXPECT_EQ(boundary, "pool1");
    auto sent = edge->Tensor(boundary);
    ASSERT_TRUE(sent.ok()) << sent.message();
    ASSERT_TRUE(cloud->SetInput(boundary, sent->span()).ok());
    ASSERT_TRUE(cloud->Run().ok());
    for (const char* name : {"exit.sm", "final.sm"}) {
      auto want = all->Tensor(name);
      auto got = std::string(name) == "exit.sm" ? edge->Tensor(name) : cloud->Tensor(name);
      ASSERT_TRUE(want.ok() && got.ok());
      for (int64_t i = 0; i < want->size(); ++i) EXPECT_EQ(want->data[i], got->data[i]) << name;
    }
    EXPECT_FALSE(edge->Tensor("final.sm").ok());
  }
}

TEST(Executor, BuffersAreReusedAndResultsKept) {
  auto g = ResidualGraph(graph::Precision::kF32);
  PlanOptions o;
  auto lean = Plan(g, o);
  o.keep_all = true;
  auto full = Plan(g, o);
  ASSERT_TRUE(lean && full);
  EXPECT_LT(lean->arena_bytes(), full->arena_bytes());
  std::vector<float> input = Random(9 * 9 * 3, 1);
  ASSERT_TRUE(lean->SetInput("image", input).ok());
  ASSERT_TRUE(full->SetInput("image", input).ok());
  ASSERT_TRUE(lean->Run().ok());
  ASSERT_TRUE(full->Run().ok());
  // Reuse must not corrupt the results: both plans agree on every output.
  for (const auto& out : g->outputs) {
    TensorView a = lean->Tensor(out.tensor), b = full->Tensor(out.tensor);
    for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.data[i], b.data[i]);
  }
  auto hidden = lean->Tensor("relu0");
  ASSERT_FALSE(hidden.ok());
  EXPECT_NE(hidden.message().find("keep"), std::string::npos);
  EXPECT_TRUE(full->Tensor("relu0").ok());
  o.keep_all = false;
  o.keep = {"relu0"};
  auto kept = Plan(g, o);
  ASSERT_TRUE(kept);
  ASSERT_TRUE(kept->SetInput("image", input).ok());
  ASSERT_TRUE(kept->Run().ok());
  auto r0 = kept->Tensor("relu0");
  auto f0 = full->Tensor("relu0");
  ASSERT_TRUE(r0.ok() && f0.ok());
  for (int64_t i = 0; i < r0->size(); ++i) EXPECT_EQ(r0->data[i], f0->data[i]);
}

TEST(Executor, RunAllocatesNothing) {
  if (!testing::AllocationCountingWorks()) GTEST_SKIP() << "a sanitizer owns the allocator";
  auto g = ResidualGraph(graph::Precision::kBinary);
  for (int threads : {1, 2}) {
    PlanOptions o;
    o.batch = 3;
    o.threads = threads;
    auto e = Plan(g, o);
    ASSERT_TRUE(e);
    ASSERT_TRUE(e->SetInput("image", Random(3 * 9 * 9 * 3, 2)).ok());
    ASSERT_TRUE(e->Run().ok());
    int64_t before = testing::AllocationCount();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(e->Run().ok());
    EXPECT_EQ(testing::AllocationCount() - before, 0) << "threads " << threads;
  }
}

TEST(Executor, ThreadsGiveSameAnswers) {
  auto g = ResidualGraph(graph::Precision::kF32);
  PlanOptions o;
  o.batch = 4;
  o.threads = 1;
  auto one = Plan(g, o);
  o.threads = 2;
  auto two = Plan(g, o);
  ASSERT_TRUE(one && two);
  auto input = Random(4 * 9 * 9 * 3, 9);
  ASSERT_TRUE(one->SetInput("image", input).ok());
  ASSERT_TRUE(two->SetInput("image", input).ok());
  ASSERT_TRUE(one->Run().ok() && two->Run().ok());
  TensorView a = *one->Tensor("final.sm"), b = *two->Tensor("final.sm");
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.data[i], b.data[i]);
}

TEST(Executor, ClearErrors) {
  auto g = ResidualGraph(graph::Precision::kF32);
  PlanOptions o;
  o.backend = "tpu";
  auto e = Executor::Create(g, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("unknown backend 'tpu'"), std::string::npos) << e.message();
  o = PlanOptions{};
  o.batch = 0;
  EXPECT_FALSE(Executor::Create(g, o).ok());
  o = PlanOptions{};
  o.keep = {"nonexistent"};
  e = Executor::Create(g, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("nonexistent"), std::string::npos);
  o = PlanOptions{};
  auto ok = Plan(g, o);
  ASSERT_TRUE(ok);
  Status s = ok->SetInput("image", std::vector<float>(5));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("takes 243 values"), std::string::npos) << s.message();
  EXPECT_FALSE(ok->SetInput("relu0", std::vector<float>(5)).ok());
  EXPECT_FALSE(ok->Tensor("nope").ok());
  EXPECT_FALSE(Executor::Create(nullptr, o).ok());
}

TEST(Executor, CloudOnlyModelHasNoEdgeToPlan) {
  GraphBuilder b("cloud_only");
  b.SetPartition(graph::Partition::kCloud);
  TensorId x = b.Input("x", {4});
  b.Output("y", b.Op("relu", OpType::kRelu, {x}), graph::OutputKind::kFinal);
  auto g = std::make_shared<const graph::Graph>(std::move(b).Build().value());
  PlanOptions o;
  o.scope = Scope::kEdge;
  auto e = Executor::Create(g, o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("no edge partition"), std::string::npos) << e.message();
}

// A plan for some outputs keeps only the nodes and inputs they need, and computes them as the
// whole plan does.
TEST(Executor, PlanOnlyWhatTheRequestedOutputsNeed) {
  GraphBuilder b("two_inputs");
  TensorId x = b.Input("x", {4});
  TensorId z = b.Input("z", {4});
  TensorId a = b.Op("a", OpType::kRelu, {x});
  b.Output("first", b.Op("first.sm", OpType::kSoftmax, {a}), graph::OutputKind::kExit);
  b.Output("second", b.Op("second", OpType::kAdd, {a, z}), graph::OutputKind::kOther);
  auto g = std::make_shared<const graph::Graph>(std::move(b).Build().value());
  PlanOptions o;
  auto all = Executor::Create(g, o);
  ASSERT_TRUE(all.ok()) << all.message();
  o.outputs = {"first"};
  auto some = Executor::Create(g, o);
  ASSERT_TRUE(some.ok()) << some.message();
  ASSERT_EQ((*some)->inputs().size(), 1u);
  EXPECT_EQ(g->tensors[(*some)->inputs()[0]].name, "x");
  EXPECT_EQ((*some)->steps().size(), 2u);
  EXPECT_FALSE((*some)->SetInput("z", std::vector<float>(4, 1.f)).ok());
  EXPECT_FALSE((*some)->Tensor("second").ok());
  const std::vector<float> in = {-1.f, 2.f, 0.5f, 3.f};
  ASSERT_TRUE((*all)->SetInput("x", in).ok());
  ASSERT_TRUE((*all)->SetInput("z", in).ok());
  ASSERT_TRUE((*some)->SetInput("x", in).ok());
  ASSERT_TRUE((*all)->Run().ok());
  ASSERT_TRUE((*some)->Run().ok());
  auto want = (*all)->Tensor("first.sm"), got = (*some)->Tensor("first.sm");
  ASSERT_TRUE(want.ok() && got.ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(want->data[i], got->data[i]);
  o.outputs = {"third"};
  auto bad = Executor::Create(g, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("no output or tensor 'third'"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace hybrid::engine
