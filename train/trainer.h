// Training both hybrid shapes from a recipe (libtorch, all cores): shape A with the joint exit
// loss; shape B with the edge and cloud models trained together, then rounds of router training
// on the proxy label [edge wrong and cloud right] with a coverage penalty and of re-weighted model
// training. Deterministic for a seed and thread count; checkpoints after every epoch or round.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "train/data.h"
#include "train/net.h"
#include "train/recipe.h"

namespace hybrid::train {

struct TrainOptions {
  int epochs = -1;          // >= 0 overrides the recipe's
  std::string resume;       // a checkpoint to continue from
  std::string checkpoint;   // written after every epoch and round ("": none)
  int64_t train_limit = 0;  // > 0: train on that many samples only (tests)
  int stop_after = 0;       // > 0: stop after this many epochs of phase one, as if cut off
  int threads = 0;          // 0: every core
  std::function<void(const std::string&)> log;  // progress lines
};

// The trained networks of either shape.
struct Nets {
  Net net{nullptr};                   // shape A
  Net edge{nullptr}, cloud{nullptr};  // shape B
  Router router{nullptr};
  std::vector<torch::nn::Module*> All() const;
  void Train(bool on) const;
};

struct Trained {
  Recipe recipe;
  Splits splits;
  Nets nets;
  // Mean training loss of each epoch (phase one for shape B).
  std::vector<double> epoch_loss;
  // Accuracy of each named output on the validation and test splits.
  std::map<std::string, double> validation_accuracy, test_accuracy;
};

// Builds the networks of a recipe for the dataset's shapes; checks what the recipe cannot.
Result<Nets> BuildNets(const Recipe& recipe, const Splits& splits);

Result<Trained> Train(const Recipe& recipe, const TrainOptions& options);

// Eval-mode values of the model's named outputs (class probabilities, the router's logit, the
// router's input features) for images [N, C, H, W], keyed by output name.
std::map<std::string, torch::Tensor> NamedOutputs(const Trained& t, const torch::Tensor& images);

// Sets libtorch's thread count to `threads`, or one per core for 0; returns the count set.
int UseThreads(int threads);

// Trains `router` from its input features [N, F] to its targets [N] (RouterTarget) as the
// trainer's router rounds do: standardized inputs, Adam at 1e-3, `rs.router_epochs` epochs of
// batches of `batch` in an order drawn from `seed`, binary cross-entropy plus the coverage
// penalty; calls `epoch_done` with each epoch's mean loss. Leaves the router in eval mode.
void FitRouter(Router& router, const torch::Tensor& features, const torch::Tensor& labels,
               const RouterSpec& rs, int batch, uint64_t seed,
               const std::function<void(int epoch, double loss)>& epoch_done = {});

// Accuracy of each named classifier output over `samples`.
std::map<std::string, double> Accuracies(const Trained& t, const Samples& samples);

}  // namespace hybrid::train
