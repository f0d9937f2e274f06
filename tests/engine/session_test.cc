// The hybrid session against running the partitions by hand: the same scores, decisions and
// answers, for a split network with an exit and for a selective-query model with a learned router.
#include "engine/session.h"

#include <gtest/gtest.h>

#include <random>

#include "graph/builder.h"
#include "router/router.h"
#include "tests/graph/test_graphs.h"

namespace hybrid::engine {
namespace {

using graph::GraphBuilder;
using graph::OpType;
using graph::TensorId;

std::vector<uint8_t> Pixels(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& p : v) p = static_cast<uint8_t>(rng() % 256);
  return v;
}

// The whole graph on ref for `count` images normalized as the session normalizes them.
std::unique_ptr<Executor> RunWhole(std::shared_ptr<const graph::Graph> g,
                                   const std::vector<uint8_t>& pixels, int count,
                                   std::vector<std::string> outputs) {
  PlanOptions o;
  o.batch = count;
  o.outputs = std::move(outputs);
  auto ex = Executor::Create(g, o);
  EXPECT_TRUE(ex.ok()) << ex.message();
  TensorView in = (*ex)->Tensor(g->inputs[0]);
  for (size_t j = 0; j < pixels.size(); ++j) {
    in.data[j] = (static_cast<float>(pixels[j]) / 255.f - g->input_mean[0]) / g->input_std[0];
  }
  EXPECT_TRUE((*ex)->Run().ok());
  return std::move(ex).value();
}

int ArgMax(const float* row, int n) {
  return static_cast<int>(std::max_element(row, row + n) - row);
}

TEST(HybridSession, SplitNetworkAnswersAsThePartitionsByHand) {
  auto g = std::make_shared<const graph::Graph>(graph::testing::TinyHybridGraph());
  const int n = 40;
  const std::vector<uint8_t> pixels = Pixels(n * 64, 1);
  const TensorId logits = LogitsOf(*g, "exit");
  ASSERT_GE(logits, 0);
  auto whole = RunWhole(g, pixels, n, {"exit", "final", g->tensors[logits].name});
  const TensorView z = whole->Tensor(logits), exit = whole->Tensor(g->FindOutput("exit")->tensor),
                   final = whole->Tensor(g->FindOutput("final")->tensor);
  std::vector<float> scores;
  for (int i = 0; i < n; ++i) scores.push_back(router::EntropyScore({z.data + i * 3, 3}));
  SessionOptions o;
  o.edge_backend = o.cloud_backend = "ref";
  o.batch = 7;  // chunks that do not divide the inputs
  o.threshold = router::ThresholdForCoverage(scores, 0.5);
  auto session = HybridSession::Create(g, o);
  ASSERT_TRUE(session.ok()) << session.message();
  EXPECT_EQ((*session)->score_kind(), router::ScoreKind::kEntropy);
  EXPECT_EQ((*session)->exit(), "exit");
  auto answers = (*session)->Classify(pixels, n);
  ASSERT_TRUE(answers.ok()) << answers.message();
  int sent = 0;
  for (int i = 0; i < n; ++i) {
    const Answer& a = (*answers)[i];
    EXPECT_EQ(a.score, scores[i]) << i;
    const bool edge = scores[i] <= o.threshold;
    EXPECT_EQ(a.where, edge ? router::Decision::kEdge : router::Decision::kCloud) << i;
    EXPECT_EQ(a.label, edge ? ArgMax(exit.data + i * 3, 3) : ArgMax(final.data + i * 3, 3)) << i;
    EXPECT_GE(a.total_ms, a.edge_ms);
    sent += !edge;
  }
  EXPECT_EQ(sent, n / 2);
  // Everything at the edge, or abstaining above the threshold.
  (*session)->set_threshold(std::numeric_limits<float>::infinity());
  auto all_edge = (*session)->Classify(pixels, n);
  ASSERT_TRUE(all_edge.ok());
  for (const Answer& a : *all_edge) EXPECT_EQ(a.where, router::Decision::kEdge);
  o.abstain = true;
  auto abstaining = HybridSession::Create(g, o);
  ASSERT_TRUE(abstaining.ok());
  auto none = (*abstaining)->Classify(pixels, n);
  ASSERT_TRUE(none.ok());
  for (int i = 0; i < n; ++i) {
    if (scores[i] > o.threshold) {
      EXPECT_EQ((*none)[i].label, -1);
    }
  }
  // Bad input.
  EXPECT_FALSE((*session)->Classify(pixels, n + 1).ok());
  o.router = "coin";
  auto bad = HybridSession::Create(g, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unknown router"), std::string::npos);
  // What the edge sends: the relu's output, f32 since a float conv reads it.
  const auto wire = CloudWire(*g);
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_EQ(wire[0].name, "relu1");
  EXPECT_EQ(wire[0].form, WireTensor::Form::kF32);
  EXPECT_EQ(wire[0].bytes, 8 * 8 * 4 * 4);
}

// A transport whose cloud is down for the requests it is told to drop.
class FlakyTransport : public Transport {
 public:
  FlakyTransport(std::unique_ptr<Transport> cloud, int* drop)
      : cloud_(std::move(cloud)), drop_(drop) {}
  Status Infer(const CloudRequest& request, std::span<float> out, CloudReply* reply) override {
    if (*drop_ > 0) {
      --*drop_;
      *reply = CloudReply{};
      reply->answered = false;
      reply->reason = "down";
      return Status::Ok();
    }
    return cloud_->Infer(request, out, reply);
  }

 private:
  std::unique_ptr<Transport> cloud_;
  int* drop_;
};

TEST(HybridSession, ACloudThatCannotAnswerLeavesTheEdgesAnswersFlagged) {
  auto g = std::make_shared<const graph::Graph>(graph::testing::TinyHybridGraph());
  const int n = 20;
  const std::vector<uint8_t> pixels = Pixels(n * 64, 3);
  auto whole = RunWhole(g, pixels, n, {"exit", "final"});
  const TensorView exit = whole->Tensor(g->FindOutput("exit")->tensor),
                   final = whole->Tensor(g->FindOutput("final")->tensor);
  SessionOptions o;
  o.edge_backend = o.cloud_backend = "ref";
  o.batch = 5;  // four requests, everything sent
  o.threshold = -std::numeric_limits<float>::infinity();
  auto cloud = MakeInProcessTransport(g, "ref", o.batch, 1);
  ASSERT_TRUE(cloud.ok());
  int drop = 2;  // the first two requests
  auto session = HybridSession::Create(
      g, o, std::make_unique<FlakyTransport>(std::move(cloud).value(), &drop));
  ASSERT_TRUE(session.ok()) << session.message();
  auto answers = (*session)->Classify(pixels, n);
  ASSERT_TRUE(answers.ok()) << answers.message();
  for (int i = 0; i < n; ++i) {
    const Answer& a = (*answers)[i];
    const bool dropped = i < 2 * o.batch;
    EXPECT_EQ(a.degraded, dropped) << i;
    EXPECT_EQ(a.where, dropped ? router::Decision::kEdge : router::Decision::kCloud) << i;
    EXPECT_EQ(a.label, dropped ? ArgMax(exit.data + i * 3, 3) : ArgMax(final.data + i * 3, 3)) << i;
  }
  const SessionStats& stats = (*session)->stats();
  EXPECT_EQ(stats.requests, 4);
  EXPECT_EQ(stats.samples_sent, n);
  EXPECT_EQ(stats.unanswered_requests, 2);
  EXPECT_EQ(stats.degraded, 2 * o.batch);
}

// A selective-query model: an edge model and a cloud model on the image, a learned router on the
// edge's probabilities and pooled features.
std::shared_ptr<const graph::Graph> SelectiveModel() {
  GraphBuilder b("selective");
  auto values = [](size_t n, uint32_t seed) { return graph::testing::RandomValues(n, seed); };
  TensorId image = b.Input("image", {6, 6, 1});
  graph::Conv2dAttrs c;
  c.kernel_h = c.kernel_w = 3;
  c.pad_top = c.pad_bottom = c.pad_left = c.pad_right = 1;
  TensorId h =
      b.Op("edge.relu", OpType::kRelu,
           {b.Conv2d("edge.conv", image, b.Constant("ew", {4, 3, 3, 1}, values(36, 1)), -1, c)});
  TensorId pooled = b.Op("edge.pooled", OpType::kGlobalAvgPool, {h});
  TensorId logits = b.Dense("edge.fc", pooled, b.Constant("efw", {3, 4}, values(12, 2)),
                            b.Constant("efb", {3}, values(3, 3)));
  b.Output("edge", b.Op("edge.softmax", OpType::kSoftmax, {logits}), graph::OutputKind::kExit);
  b.Output("edge.pooled", pooled, graph::OutputKind::kOther);
  TensorId f = b.Input("router.features", {1 + 3 + 4});
  TensorId r = b.Dense("router.fc0", f, b.Constant("rw0", {4, 8}, values(32, 4)),
                       b.Constant("rb0", {4}, values(4, 5)));
  r = b.Dense("router.fc1", b.Op("router.relu0", OpType::kRelu, {r}),
              b.Constant("rw1", {1, 4}, values(4, 6)), b.Constant("rb1", {1}, values(1, 7)));
  b.Output("router", r, graph::OutputKind::kRouter);
  b.SetPartition(graph::Partition::kCloud);
  TensorId flat = b.Op("cloud.flatten", OpType::kFlatten, {image});
  TensorId cl = b.Dense("cloud.fc", flat, b.Constant("cw", {3, 36}, values(108, 8)), -1);
  b.Output("cloud", b.Op("cloud.softmax", OpType::kSoftmax, {cl}), graph::OutputKind::kFinal);
  b.graph().input_mean = {0.5f};
  b.graph().input_std = {0.25f};
  b.graph().metadata["router.features"] = "entropy,top10-margins,pooled:edge.pooled";
  return std::make_shared<const graph::Graph>(std::move(b).Build().value());
}

TEST(HybridSession, LearnedRouterAnswersAsThePartitionsByHand) {
  auto g = SelectiveModel();
  const int n = 30;
  const std::vector<uint8_t> pixels = Pixels(n * 36, 2);
  auto whole = RunWhole(g, pixels, n, {"edge", "edge.pooled", "cloud"});
  const TensorView edge = whole->Tensor(g->FindOutput("edge")->tensor),
                   pooled = whole->Tensor(g->FindOutput("edge.pooled")->tensor),
                   cloud = whole->Tensor(g->FindOutput("cloud")->tensor);
  auto router = router::LearnedRouter::FromGraph(*g);
  ASSERT_TRUE(router.ok()) << router.message();
  ASSERT_TRUE(router->pooled());
  std::vector<float> scores;
  for (int i = 0; i < n; ++i) {
    scores.push_back(router->Score({edge.data + i * 3, 3}, {pooled.data + i * 4, 4}));
  }
  SessionOptions o;
  o.edge_backend = o.cloud_backend = "ref";
  o.batch = 4;
  o.threshold = router::ThresholdForCoverage(scores, 0.7);
  auto session = HybridSession::Create(g, o);
  ASSERT_TRUE(session.ok()) << session.message();
  EXPECT_EQ((*session)->score_kind(), router::ScoreKind::kLearned);
  EXPECT_EQ((*session)->exit(), "edge");
  auto answers = (*session)->Classify(pixels, n);
  ASSERT_TRUE(answers.ok()) << answers.message();
  for (int i = 0; i < n; ++i) {
    const Answer& a = (*answers)[i];
    EXPECT_EQ(a.score, scores[i]) << i;
    const bool kept = scores[i] <= o.threshold;
    EXPECT_EQ(a.label, kept ? ArgMax(edge.data + i * 3, 3) : ArgMax(cloud.data + i * 3, 3)) << i;
  }
  // The cloud reads the raw image: the edge sends its pixels.
  const auto wire = CloudWire(*g);
  ASSERT_EQ(wire.size(), 1u);
  EXPECT_EQ(wire[0].form, WireTensor::Form::kPixels);
  EXPECT_EQ(wire[0].bytes, 36);
}

}  // namespace
}  // namespace hybrid::engine
