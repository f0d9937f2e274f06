// Image classification datasets read from their published files: Fashion-MNIST (IDX, gzipped or
// not) and CIFAR-10/100 (binary version). Nothing is ever downloaded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hybrid::data {

enum class Split { kTrain, kTest };

// "train" or "test".
Result<Split> ParseSplit(std::string_view s);
std::string_view ToString(Split s);

// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Dataset {
  std::string name;  // "fashion-mnist", "cifar10" or "cifar100"
  int64_t count = 0;
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> images;  // count x height x width x channels (NHWC)
  std::vector<int32_t> labels;  // count, each in [0, num_classes)
  int num_classes = 0;
  std::vector<std::string> class_names;

  int64_t image_size() const { return static_cast<int64_t>(height) * width * channels; }
  // Pixels of sample i; expects 0 <= i < count.
  const uint8_t* image(int64_t i) const { return images.data() + i * image_size(); }
};

// An IDX file of unsigned bytes: its dimensions and its data.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an IDX file of unsigned bytes, gzipped or not, checking magic, sizes and length.
Result<IdxArray> LoadIdx(const std::string& path);

// Reads Fashion-MNIST's {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir`.
Result<Dataset> LoadFashionMnist(const std::string& dir, Split split);

// Reads CIFAR-10 (classes 10) or CIFAR-100 (classes 100, fine labels) binary batches from `dir`
// or from its cifar-10-batches-bin / cifar-100-binary subfolder.
Result<Dataset> LoadCifar(const std::string& dir, int classes, Split split);

// Names understood by LoadDataset.
const std::vector<std::string>& DatasetNames();

// Loads a dataset by name; an empty dir means the default location where there is one.
Result<Dataset> LoadDataset(std::string_view name, const std::string& dir, Split split);

// The split of a training set into samples to train on and samples held out for validation (and
// calibration): a permutation of [0, count) shuffled with `seed`, its last `held_out` entries held
// out. The trainer and `hybrid eval` both use it, so calibration never sees a training sample.
struct HeldOutSplit {
  std::vector<int64_t> train, held_out;
};
HeldOutSplit SplitHeldOut(int64_t count, uint64_t seed, int64_t held_out);

// Checks that mean and std have 1 or `channels` entries (or none: identity) and std > 0.
Status CheckNormalization(const Dataset& ds, const std::vector<float>& mean,
                          const std::vector<float>& std);

// out = (pixel / 255 - mean[c]) / std[c] for sample i, NHWC; expects CheckNormalization passed.
void NormalizeImage(const Dataset& ds, int64_t i, const std::vector<float>& mean,
                    const std::vector<float>& std, float* out);

}  // namespace hybrid::data
