// A training recipe: a small JSON file naming the shape of the hybrid model, its architecture,
// the bit widths of the edge layers, the exits and the hyperparameters. docs/train.md describes
// every field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::train {

// The two hybrid methods (../shared/DESIGN.md): a conditionally deep network split at a stage
// with early exits (A), or an edge model, a cloud model and a router (B).
enum class ModelShape { kConditional, kSelective };

// A stage of residual blocks at one resolution.
struct StageSpec {
  int channels = 32;
  int blocks = 2;
  int stride = 1;  // of the stage's first block
  graph::Precision precision = graph::Precision::kF32;
};

// A classifier head: global average pooling then a dense layer ("gap"), or average pooling over
// `pool` x `pool` windows, flattening and a dense layer ("pool").
struct HeadSpec {
  std::string kind = "gap";
  int pool = 4;
};

struct NetSpec {
  int stem_channels = 32;
  std::vector<StageSpec> stages;
  HeadSpec head;
};

struct ExitSpec {
  int after_stage = 0;
  HeadSpec head;
  float weight = 0.5f;  // of its cross-entropy in the joint loss
};

struct RouterSpec {
  std::vector<int> hidden = {64};
  bool pooled_features = true;  // the edge's pooled last feature map besides the probabilities
  float target_coverage = 0.8f;
  float coverage_weight = 1.f;  // of the penalty (mean(1 - r) - target)^2 ... see docs/train.md
  // What the router that ships, trained last, learns (the rounds' routers learn "proxy"; see
  // docs/train.md): "proxy", the paper's [edge wrong and cloud right]; "gain",
  // (1 + [cloud right] - [edge right]) / 2, whose optimum ranks inputs by what sending them gains;
  // "soft-proxy" and "soft-gain", the same with the models' probabilities of the right class.
  std::string label = "proxy";
  int rounds = 2;  // alternations of router, edge and cloud training
  int router_epochs = 3;
  int model_epochs = 2;  // of edge and cloud re-weighted training per round
};

// The labels RouterSpec::label may name, in the order messages list them.
const std::vector<std::string>& RouterLabels();
bool IsRouterLabel(const std::string& label);

struct Recipe {
  std::string name;
  ModelShape shape = ModelShape::kConditional;
  std::string dataset = "fashion-mnist";
  std::string data_dir;  // empty: the default location
  uint64_t seed = 1;
  int validation = 5000;  // samples held out of the training split, for calibration
  int epochs = 30;
  int batch = 128;
  std::string optimizer = "sgd";  // sgd | adam
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  std::string schedule = "cosine";  // cosine | constant
  int crop_padding = 2;             // random crops of the image padded by this many pixels
  bool flip = true;                 // random horizontal flips
  std::vector<float> mean = {0.2860f}, std = {0.3530f};

  // Shape A.
  NetSpec net;
  int split_after = 0;         // the last edge stage
  std::string split = "int8";  // the split tensor as the cloud reads it: int8 | f32
  std::vector<ExitSpec> exits;

  // Shape B.
  NetSpec edge, cloud;
  RouterSpec router;

  std::string text;  // the recipe as written, kept in the model's metadata
};

// Parses a recipe; `where` names it in error messages.
Result<Recipe> ParseRecipe(const std::string& text, const std::string& where);
Result<Recipe> LoadRecipe(const std::string& path);

}  // namespace hybrid::train
