#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

namespace hybrid::data {

Result<Split> ParseSplit(std::string_view s) {
  if (s == "train") return Split::kTrain;
  if (s == "test") return Split::kTest;
  return Error("unknown split '{}' (known: train, test)", s);
}

std::string_view ToString(Split s) { return s == Split::kTrain ? "train" : "test"; }

namespace {

// The file as published (.gz) or decompressed by the user.
std::string FindIdx(const std::filesystem::path& dir, const std::string& stem) {
  std::error_code ec;
  std::filesystem::path gz = dir / (stem + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz.string();
  std::filesystem::path raw = dir / stem;
  if (std::filesystem::exists(raw, ec)) return raw.string();
  return gz.string();  // missing: the error names the published file
}

}  // namespace

Result<Dataset> LoadFashionMnist(const std::string& dir, Split split) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    std::string hint =
        dir == kDefaultFashionMnistDir
            ? " (install the Debian package dataset-fashion-mnist, or pass --data-dir)"
            : "";
    return Error("Fashion-MNIST directory {} not found{}", dir, hint);
  }
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string images_path = FindIdx(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = FindIdx(dir, prefix + "-labels-idx1-ubyte");
  HYBRID_ASSIGN_OR_RETURN(IdxArray images, LoadIdx(images_path));
  HYBRID_ASSIGN_OR_RETURN(IdxArray labels, LoadIdx(labels_path));
  if (images.dims.size() != 3) {
    return Error("{}: images must have 3 dimensions (count, height, width), not {}", images_path,
                 images.dims.size());
  }
  if (labels.dims.size() != 1) {
    return Error("{}: labels must have 1 dimension, not {}", labels_path, labels.dims.size());
  }
  if (images.dims[0] != labels.dims[0]) {
    return Error("{} holds {} images but {} holds {} labels", images_path, images.dims[0],
                 labels_path, labels.dims[0]);
  }
  Dataset ds;
  ds.name = "fashion-mnist";
  ds.count = images.dims[0];
  ds.height = static_cast<int>(images.dims[1]);
  ds.width = static_cast<int>(images.dims[2]);
  ds.channels = 1;
  ds.num_classes = 10;
  ds.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  ds.images = std::move(images.data);
  ds.labels.reserve(static_cast<size_t>(ds.count));
  for (int64_t i = 0; i < ds.count; ++i) {
    const int label = labels.data[static_cast<size_t>(i)];
    if (label >= ds.num_classes) {
      return Error("{}: label {} of sample {} is not below {}", labels_path, label, i,
                   ds.num_classes);
    }
    ds.labels.push_back(label);
  }
  return ds;
}

const std::vector<std::string>& DatasetNames() {
  static const std::vector<std::string> names = {"fashion-mnist", "cifar10", "cifar100"};
  return names;
}

Result<Dataset> LoadDataset(std::string_view name, const std::string& dir, Split split) {
  if (name == "fashion-mnist") {
    return LoadFashionMnist(dir.empty() ? kDefaultFashionMnistDir : dir, split);
  }
  if (name == "cifar10" || name == "cifar100") {
    if (dir.empty()) {
      return Error(
          "{} is not packaged and never downloaded: pass --data-dir with a copy of its "
          "binary version",
          name);
    }
    return LoadCifar(dir, name == "cifar10" ? 10 : 100, split);
  }
  std::string known;
  for (const std::string& n : DatasetNames()) known += (known.empty() ? "" : ", ") + n;
  return Error("unknown dataset '{}' (known: {})", name, known);
}

Status CheckNormalization(const Dataset& ds, const std::vector<float>& mean,
                          const std::vector<float>& std) {
  auto check_size = [&](const std::vector<float>& v, const char* what) -> Status {
    if (v.size() > 1 && v.size() != static_cast<size_t>(ds.channels)) {
      return Error("normalization {} has {} values but {} images have {} channels", what, v.size(),
                   ds.name, ds.channels);
    }
    return Status::Ok();
  };
  HYBRID_RETURN_IF_ERROR(check_size(mean, "mean"));
  HYBRID_RETURN_IF_ERROR(check_size(std, "std"));
  for (float m : mean) {
    if (!std::isfinite(m)) return Error("normalization mean {} is not finite", m);
  }
  for (float s : std) {
    if (!(s > 0.f) || !std::isfinite(s)) return Error("normalization std {} is not positive", s);
  }
  return Status::Ok();
}

void NormalizeImage(const Dataset& ds, int64_t i, const std::vector<float>& mean,
                    const std::vector<float>& std, float* out) {
  const uint8_t* px = ds.image(i);
  const int64_t n = ds.image_size();
  for (int64_t j = 0; j < n; ++j) {
    const size_t c = static_cast<size_t>(j % ds.channels);
    const float m = mean.empty() ? 0.f : mean[mean.size() == 1 ? 0 : c];
    const float s = std.empty() ? 1.f : std[std.size() == 1 ? 0 : c];
    out[j] = (static_cast<float>(px[j]) / 255.f - m) / s;
  }
}

HeldOutSplit SplitHeldOut(int64_t count, uint64_t seed, int64_t held_out) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  held_out = std::clamp<int64_t>(held_out, 0, count);
  HeldOutSplit s;
  s.held_out.assign(order.end() - held_out, order.end());
  order.resize(static_cast<size_t>(count - held_out));
  s.train = std::move(order);
  return s;
}

}  // namespace hybrid::data
