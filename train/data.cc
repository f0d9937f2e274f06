#include "train/data.h"

#include <algorithm>
#include <numeric>

#include "data/dataset.h"

namespace hybrid::train {
namespace {

// All samples of `ds` at `order`, normalized exactly as data::NormalizeImage does (float:
// pixel / 255, minus mean, divided by std), as NCHW.
Samples ToTensors(const data::Dataset& ds, const std::vector<int64_t>& order,
                  const std::vector<float>& mean, const std::vector<float>& std) {
  const int64_t n = static_cast<int64_t>(order.size());
  torch::Tensor images = torch::empty({n, ds.height, ds.width, ds.channels});
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  float* out = images.data_ptr<float>();
  int64_t* lab = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    data::NormalizeImage(ds, order[i], mean, std, out + i * ds.image_size());
    lab[i] = ds.labels[order[i]];
  }
  return {images.permute({0, 3, 1, 2}).contiguous(), labels};
}

}  // namespace

Result<Splits> LoadSplits(const Recipe& recipe, int64_t train_limit) {
  HYBRID_ASSIGN_OR_RETURN(data::Dataset train,
                          data::LoadDataset(recipe.dataset, recipe.data_dir, data::Split::kTrain));
  HYBRID_ASSIGN_OR_RETURN(data::Dataset test,
                          data::LoadDataset(recipe.dataset, recipe.data_dir, data::Split::kTest));
  HYBRID_RETURN_IF_ERROR(data::CheckNormalization(train, recipe.mean, recipe.std));
  if (train.height != train.width) {
    return Error("dataset '{}': the trainer expects square images, not {}x{}", recipe.dataset,
                 train.height, train.width);
  }
  if (recipe.validation >= train.count) {
    return Error("validation: {} samples leave none of the {} training samples", recipe.validation,
                 train.count);
  }
  data::HeldOutSplit split = data::SplitHeldOut(train.count, recipe.seed, recipe.validation);
  std::vector<int64_t>& order = split.train;
  const std::vector<int64_t>& held = split.held_out;
  if (train_limit > 0 && train_limit < static_cast<int64_t>(order.size()))
    order.resize(train_limit);
  std::vector<int64_t> all_test(test.count);
  std::iota(all_test.begin(), all_test.end(), 0);
  Splits s;
  s.train = ToTensors(train, order, recipe.mean, recipe.std);
  s.validation = ToTensors(train, held, recipe.mean, recipe.std);
  s.test = ToTensors(test, all_test, recipe.mean, recipe.std);
  s.classes = train.num_classes;
  s.channels = train.channels;
  s.size = train.height;
  s.class_names = train.class_names;
  return s;
}

torch::Tensor Augment(const torch::Tensor& images, int padding, bool flip,
                      const std::vector<float>& pad_values, std::mt19937_64& rng) {
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  torch::Tensor out = images;
  if (padding > 0) {
    torch::Tensor padded = torch::empty({n, c, h + 2 * padding, w + 2 * padding});
    for (int64_t ch = 0; ch < c; ++ch) {
      padded.select(1, ch).fill_(pad_values[pad_values.size() == 1 ? 0 : ch]);
    }
    padded.narrow(2, padding, h).narrow(3, padding, w).copy_(images);
    out = torch::empty_like(images);
    std::uniform_int_distribution<int> offset(0, 2 * padding);
    for (int64_t i = 0; i < n; ++i) {
      out[i].copy_(padded[i].narrow(1, offset(rng), h).narrow(2, offset(rng), w));
    }
  }
  if (flip) {
    std::vector<uint8_t> coin(n);
    for (auto& v : coin) v = static_cast<uint8_t>(rng() & 1);
    const torch::Tensor mask =
        torch::from_blob(coin.data(), {n, 1, 1, 1}, torch::kUInt8).to(torch::kBool).clone();
    out = torch::where(mask, out.flip({3}), out);
  }
  return out;
}

}  // namespace hybrid::train
