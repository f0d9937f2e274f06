// The trainer on the real Fashion-MNIST: recipes are checked, a few steps on a subset lower the
// loss for both shapes, the written model computes what the trainer computes (on the engine's ref
// and native backends), a resumed run continues exactly where the checkpoint left it, and a
// shape-B model's router refits on held-out samples leaving the rest of the file as it was.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "graph/model_file.h"
#include "tools/evaluation.h"
#include "tools/refit_router.h"
#include "tools/train_check.h"
#include "train/export.h"
#include "train/net.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace hybrid::train {
namespace {

// Small networks of both shapes, quick on a subset: a binary edge stage, an int8 split and an
// f32 cloud stage for shape A; a binary edge model, an f32 cloud model and a router for shape B.
const char* kShapeA = R"({
  "name": "tiny_a", "shape": "A", "epochs": 3, "batch": 64, "validation": 500, "lr": 0.05,
  "net": {"stem_channels": 8,
          "stages": [{"channels": 8, "blocks": 1, "precision": "binary"},
                     {"channels": 16, "blocks": 1, "stride": 2}]},
  "split_after": 0, "split": "int8",
  "exits": [{"after_stage": 0, "head": {"kind": "pool", "pool": 7}, "weight": 0.4}]
})";
const char* kShapeB = R"({
  "name": "tiny_b", "shape": "B", "epochs": 3, "batch": 64, "validation": 500, "lr": 0.05,
  "edge": {"stem_channels": 8, "stages": [{"channels": 8, "blocks": 1, "stride": 2,
                                           "precision": "binary"}]},
  "cloud": {"stem_channels": 8, "stages": [{"channels": 16, "blocks": 1, "stride": 2}]},
  "router": {"hidden": [16], "rounds": 1, "router_epochs": 1, "model_epochs": 1}
})";

Recipe Parse(const char* text) {
  auto r = ParseRecipe(text, "test");
  EXPECT_TRUE(r.ok()) << r.message();
  return *r;
}

TrainOptions Quick() {
  TrainOptions o;
  o.train_limit = 640;
  // One thread: ctest runs tests side by side on a 2-core machine.
  o.threads = 1;
  return o;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid())))
      .string();
}

TEST(Recipe, MistakesAreClearErrors) {
  struct Case {
    std::string text, expect;
  };
  const std::vector<Case> cases = {
      {"{", "not valid JSON"},
      {"[]", "expected an object"},
      {R"({"shape": "A"})", "missing field 'name'"},
      {R"({"name": "x", "shape": "C"})", "unknown shape 'C'"},
      {R"({"name": "x", "shape": "A", "epoch": 3})", "unknown field 'epoch'"},
      {R"({"name": "x", "shape": "A", "epochs": "many"})", "test.epochs: expected an integer"},
      {R"({"name": "x", "shape": "A"})", "missing field 'net'"},
      {R"({"name": "x", "shape": "A", "net": {"stages": []}})", "non-empty list of stages"},
      {R"({"name": "x", "shape": "A", "net": {"stages": [{"channels": 8, "precision": "int3"}]}})",
       "unknown precision 'int3'"},
      {R"({"name": "x", "shape": "A", "split_after": 0,
           "net": {"stages": [{"channels": 8}, {"channels": 8}]},
           "exits": [{"after_stage": 0}]})",
       "an int8 split needs"},
      {R"({"name": "x", "shape": "A", "split_after": 0, "split": "f32",
           "net": {"stages": [{"channels": 8}, {"channels": 8}]},
           "exits": [{"after_stage": 1}]})",
       "is not an edge stage"},
      {R"({"name": "x", "shape": "B", "edge": {"stages": [{"channels": 8}]}})",
       "needs the fields 'edge' and 'cloud'"},
      {R"({"name": "x", "shape": "B", "net": {"stages": [{"channels": 8}]}})",
       "test.net: a field of shape A"},
      {R"({"name": "x", "shape": "B", "edge": {"stages": [{"channels": 8}]},
           "cloud": {"stages": [{"channels": 8}]}, "router": {"label": "oracle"}})",
       "test.router.label: unknown label 'oracle'"},
  };
  for (const Case& c : cases) {
    auto r = ParseRecipe(c.text, "test");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.message().find(c.expect), std::string::npos) << r.message();
  }
  auto missing = LoadRecipe("/nonexistent/recipe.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot read recipe"), std::string::npos);
}

TEST(Recipe, ShippedRecipesParse) {
  for (const char* name :
       {"fmnist_a_binary", "fmnist_a_int4", "fmnist_b_binary", "fmnist_b_int4"}) {
    auto r = LoadRecipe(std::string(HYBRID_SOURCE_DIR) + "/models/" + name + ".json");
    EXPECT_TRUE(r.ok()) << r.message();
  }
}

// Both router targets by hand, for the four cases of edge and cloud right or wrong.
TEST(Router, TargetsRankWhatSendingChanges) {
  const torch::Tensor edge_right = torch::tensor({1.f, 1.f, 0.f, 0.f});
  const torch::Tensor cloud_right = torch::tensor({1.f, 0.f, 1.f, 0.f});
  EXPECT_TRUE(torch::equal(RouterTarget("proxy", edge_right, cloud_right),
                           torch::tensor({0.f, 0.f, 1.f, 0.f})));
  EXPECT_TRUE(torch::equal(RouterTarget("gain", edge_right, cloud_right),
                           torch::tensor({0.5f, 0.f, 1.f, 0.5f})));
}

// The soft targets read the models' probabilities of the right class instead of right or wrong.
TEST(Router, SoftTargetsReadTheProbabilitiesOfTheRightClass) {
  const torch::Tensor edge_right = torch::tensor({1.f, 0.f, 0.f});
  const torch::Tensor cloud_right = torch::tensor({1.f, 1.f, 0.f});
  const torch::Tensor edge_p = torch::tensor({0.75f, 0.25f, 0.5f});
  const torch::Tensor cloud_p = torch::tensor({1.f, 0.5f, 0.25f});
  EXPECT_TRUE(torch::allclose(RouterTarget("soft-proxy", edge_right, cloud_right, edge_p, cloud_p),
                              torch::tensor({0.25f, 0.375f, 0.125f})));
  EXPECT_TRUE(torch::allclose(RouterTarget("soft-gain", edge_right, cloud_right, edge_p, cloud_p),
                              torch::tensor({0.625f, 0.625f, 0.375f})));
}

// Training lowers the loss; the written model gives the trainer's outputs on the ref backend,
// and the same file read back gives the same answers on the native backend.
void TrainExportAndCheck(const char* recipe_text, const std::vector<std::string>& outputs) {
  const Recipe recipe = Parse(recipe_text);
  auto trained = Train(recipe, Quick());
  ASSERT_TRUE(trained.ok()) << trained.message();
  ASSERT_EQ(trained->epoch_loss.size(), 3u);
  EXPECT_LT(trained->epoch_loss.back(), trained->epoch_loss.front());
  for (const std::string& name : outputs) {
    ASSERT_EQ(trained->test_accuracy.count(name), 1u) << name;
    EXPECT_GE(trained->test_accuracy.at(name), 0.0);
    EXPECT_LE(trained->test_accuracy.at(name), 1.0);
  }
  auto graph = ExportGraph(*trained);
  ASSERT_TRUE(graph.ok()) << graph.message();
  EXPECT_EQ(graph->metadata.at("recipe"), recipe.text);
  const std::string path = TempPath(recipe.name + ".hybrid");
  ASSERT_TRUE(graph::WriteModelFile(*graph, path).ok());
  Status check = tools::CheckExport(*trained, path, 200, 1e-4);
  EXPECT_TRUE(check.ok()) << check.message();

  auto loaded = graph::LoadModelFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  auto g = std::make_shared<const graph::Graph>(std::move(loaded).value());
  const int n = 100;
  const torch::Tensor images =
      trained->splits.test.images.narrow(0, 0, n).permute({0, 2, 3, 1}).contiguous();
  const auto want = NamedOutputs(*trained, trained->splits.test.images.narrow(0, 0, n));
  for (const char* backend : {"ref", "native"}) {
    engine::PlanOptions o;
    o.backend = backend;
    o.batch = n;
    o.outputs = outputs;
    auto ex = engine::Executor::Create(g, o);
    ASSERT_TRUE(ex.ok()) << ex.message();
    ASSERT_TRUE(
        (*ex)
            ->SetInput("image", std::span<const float>(images.data_ptr<float>(), images.numel()))
            .ok());
    ASSERT_TRUE((*ex)->Run().ok());
    for (const std::string& name : outputs) {
      auto got = (*ex)->Tensor(g->FindOutput(name)->tensor);
      const torch::Tensor expected = want.at(name).contiguous();
      int agree = 0;
      for (int i = 0; i < n; ++i) {
        const float* row = got.data + i * 10;
        agree += std::max_element(row, row + 10) - row == expected[i].argmax().item<int64_t>();
      }
      // Same predictions; a sign that sits within rounding of zero may flip one on the native
      // backend, whose f32 layers sum in another order.
      EXPECT_GE(agree, n - 1) << backend << " " << name;
    }
  }
  // A file that does not compute what the trainer computes fails the check (every image differs).
  {
    torch::NoGradGuard no_grad;
    auto net = trained->nets.net ? trained->nets.net.ptr() : trained->nets.cloud.ptr();
    for (torch::Tensor& p : net->parameters()) p.mul_(1.5);
  }
  check = tools::CheckExport(*trained, path, 200, 1e-4);
  ASSERT_FALSE(check.ok());
  EXPECT_NE(check.message().find("differs from the trainer's"), std::string::npos)
      << check.message();
  std::filesystem::remove(path);
}

TEST(Train, ShapeAFewStepsLowerTheLossAndExportMatches) {
  TrainExportAndCheck(kShapeA, {"exit0", "final"});
}

TEST(Train, ShapeBFewStepsLowerTheLossAndExportMatches) {
  TrainExportAndCheck(kShapeB, {"edge", "cloud"});
}

TEST(Train, ShapeBWithTheGainLabelTrainsAndExports) {
  std::string text = kShapeB;
  const std::string rounds = R"("rounds": 1,)";
  text.replace(text.find(rounds), rounds.size(), R"("rounds": 1, "label": "gain",)");
  TrainExportAndCheck(text.c_str(), {"edge", "cloud"});
}

TEST(Train, ResumingContinuesExactlyWhereTheCheckpointLeft) {
  Recipe recipe = Parse(kShapeA);
  recipe.epochs = 2;
  TrainOptions o = Quick();
  auto straight = Train(recipe, o);
  ASSERT_TRUE(straight.ok()) << straight.message();
  const std::string ckpt = TempPath("tiny_a.ckpt");
  o.checkpoint = ckpt;
  o.stop_after = 1;  // as if the run were cut off after its first epoch
  auto cut = Train(recipe, o);
  ASSERT_TRUE(cut.ok()) << cut.message();
  ASSERT_EQ(cut->epoch_loss.size(), 1u);
  o.stop_after = 0;
  o.resume = ckpt;
  o.checkpoint.clear();
  auto resumed = Train(recipe, o);
  ASSERT_TRUE(resumed.ok()) << resumed.message();
  EXPECT_EQ(resumed->epoch_loss, straight->epoch_loss);
  EXPECT_EQ(resumed->test_accuracy, straight->test_accuracy);
  // The same networks under another optimizer: nothing of its state to restore, and it says so.
  std::vector<std::string> lines;
  o.log = [&](const std::string& line) { lines.push_back(line); };
  Recipe adam = recipe;
  adam.optimizer = "adam";
  auto other = Train(adam, o);
  ASSERT_TRUE(other.ok()) << other.message();
  const bool warned = std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("fresh optimizer") != std::string::npos;
  });
  EXPECT_TRUE(warned);
  o.log = nullptr;
  o.resume = "/nonexistent.ckpt";
  auto bad = Train(recipe, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("cannot resume"), std::string::npos) << bad.message();
  std::filesystem::remove(ckpt);
}

TEST(Train, RefittingTheRouterReplacesOnlyTheRoutersWeights) {
  const Recipe recipe = Parse(kShapeB);
  auto trained = Train(recipe, Quick());
  ASSERT_TRUE(trained.ok()) << trained.message();
  auto graph = ExportGraph(*trained);
  ASSERT_TRUE(graph.ok()) << graph.message();
  const std::string path = TempPath("tiny_b.hybrid"), refit = TempPath("tiny_b_refit.hybrid");
  ASSERT_TRUE(graph::WriteModelFile(*graph, path).ok());

  tools::RefitOptions o;
  o.model = path;
  o.out = refit;
  o.epochs = 2;
  o.threads = 1;
  auto report = tools::RefitRouter(o);
  ASSERT_TRUE(report.ok()) << report.message();
  EXPECT_EQ(report->samples, 500);  // the recipe's held-out validation split
  EXPECT_LE(report->max_score_error, 1e-4);
  EXPECT_GT(report->gains, 0.0);

  auto before = graph::LoadModelFile(path);
  auto after = graph::LoadModelFile(refit);
  ASSERT_TRUE(before.ok() && after.ok());
  ASSERT_EQ(before->tensors.size(), after->tensors.size());
  int changed = 0;
  for (size_t i = 0; i < before->tensors.size(); ++i) {
    const graph::Tensor& a = before->tensors[i];
    const graph::Tensor& b = after->tensors[i];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.bytes, b.bytes);
    if (!a.is_constant()) continue;
    const bool same = std::memcmp(a.data, b.data, a.bytes) == 0;
    if (a.name.rfind("router.", 0) == 0) {
      changed += !same;
    } else {
      EXPECT_TRUE(same) << a.name << " changed";
    }
  }
  EXPECT_EQ(changed, 4);  // router.fc0.w, .b, router.fc1.w, .b
  EXPECT_NE(after->metadata.at("router.fit").find("500 validation samples"), std::string::npos);

  // The recipe's seed is the default; another seed gives another router, recorded in the file.
  const auto router_bytes = [](const graph::Graph& g) {
    std::vector<uint8_t> bytes;
    for (const graph::Tensor& t : g.tensors) {
      if (!t.is_constant() || t.name.rfind("router.", 0) != 0) continue;
      const auto* data = static_cast<const uint8_t*>(t.data);
      bytes.insert(bytes.end(), data, data + t.bytes);
    }
    return bytes;
  };
  const std::string reseeded = TempPath("tiny_b_reseeded.hybrid");
  o.out = reseeded;
  const auto recipe_seed = static_cast<int64_t>(recipe.seed);
  for (const int64_t seed : {recipe_seed, recipe_seed + 1}) {
    o.seed = seed;
    auto again = tools::RefitRouter(o);
    ASSERT_TRUE(again.ok()) << again.message();
    auto file = graph::LoadModelFile(reseeded);
    ASSERT_TRUE(file.ok()) << file.message();
    EXPECT_EQ(router_bytes(*file) == router_bytes(*after), seed == recipe_seed) << seed;
    EXPECT_NE(file->metadata.at("router.fit").find(fmt::format("seed {}", seed)), std::string::npos)
        << file->metadata.at("router.fit");
  }
  o.seed = -1;

  // A soft label fits from the models' probabilities of the right class, recorded in the file.
  o.label = "soft-proxy";
  auto soft = tools::RefitRouter(o);
  ASSERT_TRUE(soft.ok()) << soft.message();
  auto soft_file = graph::LoadModelFile(reseeded);
  ASSERT_TRUE(soft_file.ok()) << soft_file.message();
  EXPECT_NE(router_bytes(*soft_file), router_bytes(*after));
  EXPECT_NE(soft_file->metadata.at("router.fit").find("label soft-proxy"), std::string::npos);
  o.label.clear();
  o.out = refit;

  // The engine runs both files alike but for the learned router's scores.
  tools::EvalOptions eo;
  eo.threads = 1;
  eo.limit = 200;
  auto eval_before = tools::EvaluateModel(path, eo);
  auto eval_after = tools::EvaluateModel(refit, eo);
  ASSERT_TRUE(eval_before.ok() && eval_after.ok());
  EXPECT_EQ(eval_before->test.scores.at("entropy"), eval_after->test.scores.at("entropy"));
  EXPECT_EQ(eval_before->test.cloud_right, eval_after->test.cloud_right);
  EXPECT_NE(eval_before->test.scores.at("learned"), eval_after->test.scores.at("learned"));
  // The probabilities of the right class the soft labels read agree with right and wrong: above
  // one half, the answer is right.
  eo.router_features = true;
  auto with_features = tools::EvaluateModel(path, eo);
  ASSERT_TRUE(with_features.ok()) << with_features.message();
  const tools::SplitResults& t = with_features->test;
  ASSERT_EQ(t.edge_p_true.size(), t.edge_right.size());
  ASSERT_EQ(t.cloud_p_true.size(), t.cloud_right.size());
  for (size_t i = 0; i < t.edge_right.size(); ++i) {
    EXPECT_TRUE(t.edge_p_true[i] >= 0 && t.edge_p_true[i] <= 1) << i;
    EXPECT_TRUE(t.cloud_p_true[i] >= 0 && t.cloud_p_true[i] <= 1) << i;
    EXPECT_TRUE(t.edge_p_true[i] <= 0.5f || t.edge_right[i]) << i;
    EXPECT_TRUE(t.cloud_p_true[i] <= 0.5f || t.cloud_right[i]) << i;
  }

  // A model without a learned router, and unknown choices, are errors that say so.
  Recipe a = Parse(kShapeA);
  auto trained_a = Train(a, Quick());
  ASSERT_TRUE(trained_a.ok()) << trained_a.message();
  auto graph_a = ExportGraph(*trained_a);
  ASSERT_TRUE(graph_a.ok());
  const std::string path_a = TempPath("tiny_a.hybrid");
  ASSERT_TRUE(graph::WriteModelFile(*graph_a, path_a).ok());
  o.model = path_a;
  auto no_router = tools::RefitRouter(o);
  ASSERT_FALSE(no_router.ok());
  EXPECT_NE(no_router.message().find("no learned router"), std::string::npos)
      << no_router.message();
  o.model = path;
  o.data = "everything";
  auto bad = tools::RefitRouter(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unknown router data"), std::string::npos) << bad.message();
  for (const std::string& p : {path, refit, reseeded, path_a}) std::filesystem::remove(p);
}

}  // namespace
}  // namespace hybrid::train
