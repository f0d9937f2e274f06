// Refitting a shape-B model's learned router on samples the models were not trained on, without
// training the models again: the engine runs the edge and cloud partitions as deployed, the
// trainer's router training runs on what they answered, and the router's weights in the model
// file are replaced.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"

namespace hybrid::tools {

struct RefitOptions {
  std::string model, out;
  // Samples the router learns from: "validation" (the held-out split the models never saw),
  // "train" (the samples they were trained on, as the trainer's own router rounds) or "both".
  std::string data = "validation";
  std::string label;  // one of train::RouterLabels(); empty: the recipe's
  int epochs = -1;    // >= 0: instead of the recipe's router_epochs
  int64_t seed = -1;  // >= 0: instead of the recipe's seed, for the router's weights and batches
  int threads = 0;    // 0: every core
  std::function<void(const std::string&)> log;
};

struct RefitReport {
  int64_t samples = 0;
  double gains = 0, losses = 0;  // shares of the samples that sending helps, that it hurts
  double max_score_error = 0;    // written router against the trained one, on those samples
};

// Fits a new router for the model at `o.model` with its recipe's router spec and writes the model
// with it to `o.out` once the file's router scores as the trained one does; the partitions and
// everything else in the file are kept. An error if the model has no learned router or carries
// no recipe, or if the recipe's router is not the file's.
Result<RefitReport> RefitRouter(const RefitOptions& o);

}  // namespace hybrid::tools
