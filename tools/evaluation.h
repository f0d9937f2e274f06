// Split-execution evaluation of a model on a dataset: each sample's edge and cloud answers and
// router scores on the held-out validation split (for calibration) and the test split (for the
// figures), and operating points from them. Shared by `hybrid eval` and `hybrid explore`.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "data/dataset.h"
#include "engine/session.h"
#include "graph/ir.h"
#include "graph/partition.h"
#include "router/metrics.h"

namespace hybrid::tools {

struct EvalOptions {
  std::string dataset, data_dir;
  std::string edge_backend = "native", cloud_backend = "onednn";
  std::string exit;  // the deciding output; empty: the session's default
  int threads = 0, batch = 256;
  int64_t limit = 0;             // > 0: the first `limit` test samples only
  bool router_features = false;  // keep each sample's learned-router input (SplitResults)
  bool train_split = false;      // also run the training samples the model was fitted on
  std::function<void(const std::string&)> progress;
  // Makes the transport to the cloud partition for requests of up to `batch` samples; empty: the
  // cloud in this process on `cloud_backend`.
  std::function<Result<std::unique_ptr<engine::Transport>>(
      std::shared_ptr<const graph::Graph> graph, int batch)>
      make_transport;
};

// What the transport carried during an evaluation.
struct TransportTotals {
  int64_t requests = 0, samples = 0, attempts = 0;
  int64_t degraded = 0;  // samples the cloud did not answer: the edge's answer stands
  double bytes_sent = 0, bytes_received = 0, call_ms = 0, server_ms = 0;
};

// Per-sample results on one split.
struct SplitResults {
  std::vector<int32_t> labels;
  std::vector<uint8_t> edge_right, cloud_right;
  std::vector<int32_t> cloud_label;  // the cloud's class per sample (the edge's when degraded)
  std::map<std::string, std::vector<float>> scores;  // by router: maxprob, entropy, margin, learned
  // With EvalOptions::router_features, the learned router's input per sample, row after row of
  // `router_feature_count` values.
  std::vector<float> router_features;
  int router_feature_count = 0;
  // With EvalOptions::router_features, the edge's and the cloud's probability of the right class.
  std::vector<float> edge_p_true, cloud_p_true;
  router::Outcomes For(const std::string& router) const;
};

struct ModelEval {
  std::shared_ptr<const graph::Graph> graph;
  std::string exit;                  // the deciding output
  std::vector<std::string> routers;  // the score kinds available for this model
  graph::CostReport cost;
  router::Costs costs;
  std::vector<engine::WireTensor> wire;
  SplitResults validation, test;
  SplitResults train;  // with EvalOptions::train_split: the training split less the held-out one
  TransportTotals transport;  // every split run
  data::Dataset test_set;     // for latency measurements
};

// Runs the model's edge and cloud partitions on every validation and test sample (and training
// sample, with EvalOptions::train_split).
Result<ModelEval> EvaluateModel(const std::string& path, const EvalOptions& options);

// The validation split a model was trained without: the recipe in its metadata names the seed and
// the held-out count (defaults 1 and 5000 when the model carries no recipe).
struct HeldOut {
  uint64_t seed = 1;
  int64_t count = 5000;
  bool from_recipe = false;
};
HeldOut HeldOutOf(const graph::Graph& g);

// Energy of running the whole model in f32 on the edge: both partitions for a conditionally deep
// model, the cloud model for a selective-query one (the full-precision model it replaces).
double Fp32EdgeEnergyUj(const ModelEval& m, const router::EnergyTable& table);

}  // namespace hybrid::tools
