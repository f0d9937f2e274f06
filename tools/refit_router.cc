#include "tools/refit_router.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "graph/builder.h"
#include "graph/model_file.h"
#include "router/router.h"
#include "tools/evaluation.h"
#include "train/layers.h"
#include "train/net.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace hybrid::tools {
namespace {

// The router's inputs and the per-sample correctness of both models over the chosen splits.
struct FitData {
  std::vector<float> features;
  std::vector<float> edge_right, cloud_right;
  std::vector<float> edge_p, cloud_p;
  int feature_count = 0;
};

void Append(const SplitResults& s, FitData* d) {
  d->feature_count = s.router_feature_count;
  d->features.insert(d->features.end(), s.router_features.begin(), s.router_features.end());
  d->edge_right.insert(d->edge_right.end(), s.edge_right.begin(), s.edge_right.end());
  d->cloud_right.insert(d->cloud_right.end(), s.cloud_right.begin(), s.cloud_right.end());
  d->edge_p.insert(d->edge_p.end(), s.edge_p_true.begin(), s.edge_p_true.end());
  d->cloud_p.insert(d->cloud_p.end(), s.cloud_p_true.begin(), s.cloud_p_true.end());
}

// Replaces the constants of `g`'s router with those of `router`, exported as the trainer exports
// it; each must exist in `g` under the same name, shape and type.
Status ReplaceRouter(graph::Graph& g, train::Router& router, int features) {
  graph::GraphBuilder b("router");
  train::Exporter e(b);
  b.SetPartition(graph::Partition::kEdge);
  const graph::TensorId in = b.Input("router.features", {features});
  b.Output("router", router.ptr()->Export(e, "router", in), graph::OutputKind::kRouter);
  HYBRID_ASSIGN_OR_RETURN(graph::Graph fresh, std::move(b).Build());
  int replaced = 0;
  for (const graph::Tensor& t : fresh.tensors) {
    if (!t.is_constant()) continue;
    const graph::TensorId id = g.FindTensor(t.name);
    if (id < 0 || !g.tensors[id].is_constant() || g.tensors[id].shape != t.shape ||
        g.tensors[id].dtype != t.dtype) {
      return Error(
          "the model's router does not match its recipe's: no constant '{}' of shape {} in the "
          "model",
          t.name, graph::ShapeToString(t.shape));
    }
    g.tensors[id].data = t.data;
    g.tensors[id].bytes = t.bytes;
    ++replaced;
  }
  g.storage.insert(g.storage.end(), fresh.storage.begin(), fresh.storage.end());
  if (replaced == 0) return Error("the recipe's router has no weights");
  return Status::Ok();
}

}  // namespace

Result<RefitReport> RefitRouter(const RefitOptions& o) {
  if (o.data != "validation" && o.data != "train" && o.data != "both") {
    return Error("unknown router data '{}' (expected validation, train or both)", o.data);
  }
  if (!o.label.empty() && !train::IsRouterLabel(o.label)) {
    return Error("unknown router label '{}' (expected one of {})", o.label,
                 fmt::join(train::RouterLabels(), ", "));
  }
  // What the refit needs from the file, checked before the partitions run.
  HYBRID_ASSIGN_OR_RETURN(graph::Graph file, graph::LoadModelFile(o.model));
  if (auto found = router::LearnedRouter::FromGraph(file); !found.ok()) {
    return found.status().WithContext(o.model);
  }
  const auto recipe_text = file.metadata.find("recipe");
  if (recipe_text == file.metadata.end()) {
    return Error("{}: the model carries no recipe, which names its router's layers", o.model);
  }
  HYBRID_ASSIGN_OR_RETURN(train::Recipe recipe,
                          train::ParseRecipe(recipe_text->second, o.model + ": its recipe"));
  if (recipe.shape != train::ModelShape::kSelective) {
    return Error("{}: not a shape-B model", o.model);
  }

  EvalOptions eo;
  eo.data_dir = recipe.data_dir;
  eo.threads = o.threads;
  eo.router_features = true;
  eo.train_split = o.data != "validation";
  eo.limit = 1;  // the test split is not needed
  eo.progress = o.log;
  auto evaluated = EvaluateModel(o.model, eo);
  if (!evaluated.ok()) return evaluated.status().WithContext(o.model);
  const graph::Graph& g = *evaluated->graph;
  train::RouterSpec spec = recipe.router;
  if (o.epochs >= 0) spec.router_epochs = o.epochs;
  if (!o.label.empty()) spec.label = o.label;

  FitData d;
  if (o.data != "train") Append(evaluated->validation, &d);
  if (o.data != "validation") Append(evaluated->train, &d);
  const auto n = static_cast<int64_t>(d.edge_right.size());
  if (n == 0 || d.feature_count == 0) return Error("{}: no samples to fit the router on", o.model);

  train::UseThreads(o.threads);
  const uint64_t seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : recipe.seed;
  torch::manual_seed(seed);
  const torch::Tensor features =
      torch::from_blob(d.features.data(), {n, d.feature_count}, torch::kFloat32).clone();
  const torch::Tensor edge_right = torch::from_blob(d.edge_right.data(), {n}, torch::kFloat32);
  const torch::Tensor cloud_right = torch::from_blob(d.cloud_right.data(), {n}, torch::kFloat32);
  const torch::Tensor edge_p = torch::from_blob(d.edge_p.data(), {n}, torch::kFloat32);
  const torch::Tensor cloud_p = torch::from_blob(d.cloud_p.data(), {n}, torch::kFloat32);
  const torch::Tensor target =
      train::RouterTarget(spec.label, edge_right, cloud_right, edge_p, cloud_p).clone();
  RefitReport report;
  report.samples = n;
  report.gains = ((1 - edge_right) * cloud_right).mean().item<double>();
  report.losses = (edge_right * (1 - cloud_right)).mean().item<double>();
  if (o.log) {
    o.log(
        fmt::format("fitting the router on {} {} samples (label {}): edge wrong, cloud right "
                    "{:.2f}%, edge right, cloud wrong {:.2f}%",
                    n, o.data, spec.label, 100 * report.gains, 100 * report.losses));
  }
  train::Router router(d.feature_count, spec.hidden);
  train::FitRouter(
      router, features, target, spec, recipe.batch, seed + 1009, [&](int epoch, double loss) {
        if (o.log) {
          o.log(
              fmt::format("router epoch {}/{}  loss {:.4f}", epoch + 1, spec.router_epochs, loss));
        }
      });

  graph::Graph out = g;
  HYBRID_RETURN_IF_ERROR(ReplaceRouter(out, router, d.feature_count).WithContext(o.model));
  out.metadata["router.fit"] = fmt::format("refit on {} {} samples, label {}, {} epochs, seed {}",
                                           n, o.data, spec.label, spec.router_epochs, seed);
  // The file as it will be written scores every sample as the trained router does; only then is
  // it written.
  HYBRID_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, graph::SerializeModel(out));
  HYBRID_ASSIGN_OR_RETURN(graph::Graph written,
                          graph::LoadModelFromMemory(bytes.data(), bytes.size()));
  HYBRID_ASSIGN_OR_RETURN(router::LearnedRouter learned, router::LearnedRouter::FromGraph(written));
  torch::NoGradGuard no_grad;
  const torch::Tensor want = router.ptr()->forward(features).contiguous();
  const float* w = want.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float got = learned.Score(std::span<const float>(d.features.data() + i * d.feature_count,
                                                           static_cast<size_t>(d.feature_count)));
    report.max_score_error =
        std::max(report.max_score_error, std::abs(static_cast<double>(got) - w[i]) /
                                             std::max(1.0, std::abs(static_cast<double>(w[i]))));
  }
  if (report.max_score_error > 1e-4) {
    return Error(
        "{}: the refit router's scores in the file differ from the trained one's by {:.2g}",
        o.model, report.max_score_error);
  }
  HYBRID_RETURN_IF_ERROR(graph::WriteModelFile(out, o.out));
  return report;
}

}  // namespace hybrid::tools
