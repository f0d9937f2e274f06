// Routing on hand-computed examples: scores, the learned router's features and MLP, calibration
// to a coverage or a budget, and every figure of an operating point.
#include "router/router.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph/builder.h"
#include "router/energy.h"
#include "router/metrics.h"

namespace hybrid::router {
namespace {

TEST(Scores, AreLogarithmsOfTheUsualScoresFromLogits) {
  // Logits log(0.7), log(0.2), log(0.1): probabilities 0.7, 0.2, 0.1.
  const std::vector<float> z = {std::log(0.7f), std::log(0.2f), std::log(0.1f)};
  EXPECT_NEAR(MaxProbScore(z), std::log(0.3), 1e-5);
  const double h = -(0.7 * std::log(0.7) + 0.2 * std::log(0.2) + 0.1 * std::log(0.1));
  EXPECT_NEAR(EntropyScore(z), std::log(h), 1e-5);
  EXPECT_NEAR(MarginScore(z), std::log(1 - (0.7 - 0.2)), 1e-5);
  // Confident enough for float probabilities to round to 1, and still ordered.
  const std::vector<float> sure = {0.f, -30.f, -40.f}, surer = {0.f, -35.f, -40.f};
  for (auto score : {MaxProbScore, EntropyScore, MarginScore}) {
    EXPECT_LT(score(surer), score(sure));
    EXPECT_LT(score(sure), score(z));
  }
  EXPECT_NEAR(ProbabilityEntropy(std::vector<float>{0.5f, 0.5f, 0.f}), std::log(2.f), 1e-6);
}

TEST(Scores, KindsParseAndUnknownOnesAreErrors) {
  EXPECT_EQ(*ParseScoreKind("learned"), ScoreKind::kLearned);
  EXPECT_EQ(*ParseScoreKind("entropy"), ScoreKind::kEntropy);
  auto bad = ParseScoreKind("coin");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unknown router 'coin'"), std::string::npos);
}

TEST(RouterFeatures, EntropyThenSortedMarginsThenPooled) {
  const std::vector<float> probs = {0.1f, 0.6f, 0.3f}, pooled = {7.f, 8.f};
  const std::vector<float> f = RouterFeatures(probs, pooled);
  ASSERT_EQ(f.size(), 1u + 3u + 2u);
  EXPECT_FLOAT_EQ(f[0], ProbabilityEntropy(probs));
  EXPECT_FLOAT_EQ(f[1], 0.6f - 0.3f);
  EXPECT_FLOAT_EQ(f[2], 0.6f - 0.1f);
  EXPECT_FLOAT_EQ(f[3], 0.3f - 0.1f);
  EXPECT_EQ(f[4], 7.f);
  EXPECT_EQ(f[5], 8.f);
  // Eleven classes: the top ten give 45 margins.
  EXPECT_EQ(RouterFeatures(std::vector<float>(11, 1.f / 11), {}).size(), 46u);
}

// router.features [3] -> dense 2 -> relu -> dense 1, weights chosen by hand.
graph::Graph RouterGraph(bool with_sign) {
  graph::GraphBuilder b("router");
  graph::TensorId x = b.Input("router.features", {3});
  graph::TensorId h = b.Dense("router.fc0", x, b.Constant("w0", {2, 3}, {1, 0, -1, 0.5f, 0.5f, 0}),
                              b.Constant("b0", {2}, {0.f, -1.f}));
  h = b.Op(with_sign ? "router.sign" : "router.relu0",
           with_sign ? graph::OpType::kSign : graph::OpType::kRelu, {h});
  h = b.Dense("router.fc1", h, b.Constant("w1", {1, 2}, {2.f, -3.f}),
              b.Constant("b1", {1}, {0.5f}));
  b.Output("router", h, graph::OutputKind::kRouter);
  return std::move(b).Build().value();
}

TEST(LearnedRouter, RunsTheModelsMlp) {
  const graph::Graph g = RouterGraph(false);
  auto r = LearnedRouter::FromGraph(g);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->features(), 3);
  // x = (3, 1, 2): fc0 = (3 - 2, 1.5 + 0.5 - 1) = (1, 1); relu; fc1 = 2 - 3 + 0.5.
  EXPECT_FLOAT_EQ(r->Score(std::vector<float>{3, 1, 2}), -0.5f);
  // x = (0, 0, 4): fc0 = (-4, -1) -> relu (0, 0) -> 0.5.
  EXPECT_FLOAT_EQ(r->Score(std::vector<float>{0, 0, 4}), 0.5f);
  auto bad = LearnedRouter::FromGraph(RouterGraph(true));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("only dense and relu"), std::string::npos) << bad.message();
  graph::GraphBuilder none("none");
  none.Output("y", none.Op("relu", graph::OpType::kRelu, {none.Input("x", {2})}),
              graph::OutputKind::kFinal);
  auto missing = LearnedRouter::FromGraph(std::move(none).Build().value());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("no learned router"), std::string::npos);
}

TEST(Calibration, HitsTheCoverageWithinOneSample) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d;
  std::vector<float> scores(4999);
  for (float& s : scores) s = d(rng);
  for (double c : {0.0, 0.01, 0.25, 0.5, 0.7, 0.8, 0.9, 0.999, 1.0}) {
    const float t = ThresholdForCoverage(scores, c);
    const double got = Coverage(scores, t);
    EXPECT_GE(got, c) << c;
    EXPECT_LE(got - c, 1.0 / scores.size()) << c;
  }
  // The ends hold beyond the held-out scores: coverage 1 keeps a score above all of them,
  // coverage 0 sends one below all of them.
  EXPECT_EQ(Coverage(std::vector<float>{1e30f}, ThresholdForCoverage(scores, 1.0)), 1.0);
  EXPECT_EQ(Coverage(std::vector<float>{-1e30f}, ThresholdForCoverage(scores, 0.0)), 0.0);
  // Policy: at or below the threshold stays.
  const Policy p{0.5f, false}, abstain{0.5f, true};
  EXPECT_EQ(p.Decide(0.5f), Decision::kEdge);
  EXPECT_EQ(p.Decide(0.6f), Decision::kCloud);
  EXPECT_EQ(abstain.Decide(0.6f), Decision::kAbstain);
}

TEST(Calibration, ForABudget) {
  // Four samples; accuracy falls and energy falls as coverage grows.
  const std::vector<float> scores = {0.1f, 0.2f, 0.3f, 0.4f};
  const std::vector<double> acc = {0.95, 0.93, 0.91, 0.85, 0.80};  // by samples kept: 0..4
  const std::vector<double> energy = {10, 8, 6, 4, 2};
  auto kept = [&](float t) { return static_cast<size_t>(Coverage(scores, t) * 4 + 0.5); };
  auto a = ThresholdForBudget(scores, {Budget::Kind::kMinAccuracy, 0.9},
                              [&](float t) { return acc[kept(t)]; });
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(kept(*a), 2u);  // the largest coverage still at 90%
  auto e = ThresholdForBudget(scores, {Budget::Kind::kMaxEnergy, 5},
                              [&](float t) { return energy[kept(t)]; });
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(kept(*e), 3u);  // the smallest coverage within 5
  auto none = ThresholdForBudget(scores, {Budget::Kind::kMinAccuracy, 0.99},
                                 [&](float t) { return acc[kept(t)]; });
  EXPECT_FALSE(none.ok());
}

const char* kTable = R"({
  "mac_pj": {"f32": 4, "int8": 0.5, "int4": 0.25, "int2": 0.125, "binary": 0.0625},
  "weight_read_pj_per_byte": 2,
  "radio": {"lte": {"alpha_up_mw_per_mbps": 100, "beta_mw": 1000, "uplink_mbps": 8},
            "slow": {"alpha_up_mw_per_mbps": 500, "beta_mw": 500, "uplink_mbps": 1}}
})";

TEST(Metrics, EveryFigureOfAnOperatingPointByHand) {
  auto table = ParseEnergyTable(kTable, "test");
  ASSERT_TRUE(table.ok()) << table.message();
  ASSERT_EQ(table->radios.size(), 2u);
  EXPECT_EQ(table->radios[0].name, "lte");  // the file's order
  Outcomes o;
  o.score = {0.1f, 0.5f, 0.2f, 0.9f, 0.3f};
  o.edge_right = {1, 0, 1, 0, 0};
  o.cloud_right = {1, 1, 0, 1, 1};
  Costs costs;
  costs.edge.macs[static_cast<int>(graph::Precision::kF32)] = 1000;
  costs.edge.macs[static_cast<int>(graph::Precision::kBinary)] = 64000;
  costs.edge.param_bytes = 500;
  costs.cloud.macs[static_cast<int>(graph::Precision::kF32)] = 100000;
  costs.cloud.macs[static_cast<int>(graph::Precision::kInt8)] = 2000;
  costs.bytes_per_sent = 1000;
  // Threshold 0.3 keeps samples 0, 2, 4: coverage 3/5; right: 1 + 1 + 0 at the edge, 1 + 1 sent.
  const OperatingPoint p = Evaluate(o, 0.3f, costs, *table);
  EXPECT_DOUBLE_EQ(p.coverage, 0.6);
  EXPECT_DOUBLE_EQ(p.accuracy, 0.8);
  EXPECT_DOUBLE_EQ(p.macs[0], 1000 + 0.4 * 100000);
  EXPECT_DOUBLE_EQ(p.macs[1], 0.4 * 2000);
  EXPECT_DOUBLE_EQ(p.macs[4], 64000);
  // 1000 * 4 + 64000 * 0.0625 + 500 * 2 = 9000 pJ.
  EXPECT_DOUBLE_EQ(p.compute_uj, 9000e-6);
  EXPECT_DOUBLE_EQ(p.bytes_sent, 400);
  // LTE: 1000 bytes at 8 Mbps = 1 ms at 100 * 8 + 1000 mW = 1.8 mJ = 1800 uJ; 40% sent.
  EXPECT_NEAR(p.radio_uj[0], 0.4 * 1800, 1e-9);
  // slow: 8 ms at 1000 mW = 8 mJ.
  EXPECT_NEAR(p.radio_uj[1], 0.4 * 8000, 1e-9);
  // fp32: all 66000 + 102000 MACs at 4 pJ... per partition, weights 4 bytes each.
  graph::PartitionCost all;
  all.macs[0] = 10;
  all.macs[4] = 90;
  all.params = 7;
  EXPECT_DOUBLE_EQ(Fp32EnergyUj(all, *table), (100 * 4 + 7 * 4 * 2) * 1e-6);
  // Oracle at coverage 0.6: keep the two only the edge... gains (0, -1, +1, -1, -1): keep +1, 0,
  // then a -1: cloud's 4 right + 1 + 0 - 1 = 4 of 5.
  EXPECT_DOUBLE_EQ(OracleAccuracy(o.edge_right, o.cloud_right, 0.6), 0.8);
  EXPECT_DOUBLE_EQ(OracleAccuracy(o.edge_right, o.cloud_right, 0.0), 0.8);
  EXPECT_DOUBLE_EQ(OracleAccuracy(o.edge_right, o.cloud_right, 1.0), 0.4);
  EXPECT_DOUBLE_EQ(OracleAccuracy(o.edge_right, o.cloud_right, 0.4), 1.0);
}

TEST(Energy, TablesAreCheckedAndTheDefaultCitesItsSources) {
  auto def = ParseEnergyTable(DefaultEnergyTableText(), "default");
  ASSERT_TRUE(def.ok()) << def.message();
  EXPECT_DOUBLE_EQ(def->mac_pj[0], 4.6);  // Horowitz: 3.7 + 0.9
  ASSERT_EQ(def->radios.size(), 3u);
  EXPECT_EQ(def->radios[0].name, "lte");
  EXPECT_DOUBLE_EQ(def->radios[0].alpha_up_mw_per_mbps, 438.39);
  // Every value of the default table carries a source.
  size_t sources = 0;
  for (size_t at = 0; (at = DefaultEnergyTableText().find("\"source\"", at)) != std::string::npos;
       ++at) {
    ++sources;
  }
  EXPECT_EQ(sources, 5u + 1u + 3u);
  for (const char* bad : {"{", "{}", R"({"mac_pj": {"f32": 1}})",
                          R"({"mac_pj": {"f32": -1, "int8": 1, "int4": 1, "int2": 1, "binary": 1},
                              "weight_read_pj_per_byte": 1, "radio": {}})"}) {
    EXPECT_FALSE(ParseEnergyTable(bad, "bad").ok()) << bad;
  }
  EXPECT_FALSE(LoadEnergyTable("/nonexistent.json").ok());
}

}  // namespace
}  // namespace hybrid::router
