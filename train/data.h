// Training data as tensors: the dataset's splits normalized as the engine normalizes its input,
// a validation split held out of the training split, and augmentation.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/status.h"
#include "train/recipe.h"

namespace hybrid::train {

struct Samples {
  torch::Tensor images;  // [N, C, H, W] float, (pixel / 255 - mean[c]) / std[c]
  torch::Tensor labels;  // [N] int64
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct Splits {
  Samples train, validation, test;
  int classes = 0, channels = 0, size = 0;
  std::vector<std::string> class_names;
};

// Loads the recipe's dataset. The training split is shuffled with the recipe's seed and its last
// `validation` samples are held out; `train_limit` > 0 keeps only that many training samples
// (tests). The test split is never used for training or calibration.
Result<Splits> LoadSplits(const Recipe& recipe, int64_t train_limit = 0);

// A batch with random crops (the images padded by `padding` pixels of the value a black pixel
// normalizes to) and, with `flip`, random horizontal flips.
torch::Tensor Augment(const torch::Tensor& images, int padding, bool flip,
                      const std::vector<float>& pad_values, std::mt19937_64& rng);

}  // namespace hybrid::train
