// CIFAR binary reader: fixed-size records of label byte(s) then 3x32x32 planar (CHW) pixels,
// converted to the engine's NHWC.
#include <filesystem>
#include <fstream>

#include "data/dataset.h"

namespace hybrid::data {
namespace {

constexpr int kSide = 32;
constexpr int kPlane = kSide * kSide;
constexpr int kPixels = 3 * kPlane;

const std::vector<std::string>& Cifar10Names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

// Reads one batch file and appends its records to `ds`.
Status AppendBatch(const std::filesystem::path& path, int label_bytes, Dataset* ds) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return Error("{}: file not found", path.string());
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return Error("{}: cannot read its size: {}", path.string(), ec.message());
  const uintmax_t record = static_cast<uintmax_t>(label_bytes) + kPixels;
  if (size == 0 || size % record != 0) {
    return Error("{}: size {} is not a positive multiple of the {}-byte CIFAR record",
                 path.string(), size, record);
  }
  const int64_t records = static_cast<int64_t>(size / record);
  if (ds->count + records > 1'000'000) return Error("{}: too many CIFAR records", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("{}: cannot open", path.string());
  std::vector<uint8_t> buf(record);
  const size_t base = ds->images.size();
  ds->images.resize(base + static_cast<size_t>(records) * kPixels);
  for (int64_t r = 0; r < records; ++r) {
    if (!in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(record))) {
      return Error("{}: read failed at record {}", path.string(), r);
    }
    const int label = buf[label_bytes - 1];  // CIFAR-100: coarse then fine; we use the fine one
    if (label >= ds->num_classes) {
      return Error("{}: record {} has label {}, expected below {}", path.string(), r, label,
                   ds->num_classes);
    }
    ds->labels.push_back(label);
    uint8_t* dst = ds->images.data() + base + static_cast<size_t>(r) * kPixels;
    const uint8_t* src = buf.data() + label_bytes;
    for (int p = 0; p < kPlane; ++p) {
      for (int c = 0; c < 3; ++c) dst[p * 3 + c] = src[c * kPlane + p];
    }
  }
  ds->count += records;
  return Status::Ok();
}

}  // namespace

Result<Dataset> LoadCifar(const std::string& dir, int classes, Split split) {
  if (classes != 10 && classes != 100) return Error("CIFAR has 10 or 100 classes, not {}", classes);
  std::filesystem::path root(dir);
  const char* sub = classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary";
  std::error_code ec;
  if (std::filesystem::is_directory(root / sub, ec)) root /= sub;
  if (!std::filesystem::is_directory(root, ec)) return Error("{}: directory not found", dir);
  std::vector<std::string> files;
  if (classes == 10) {
    if (split == Split::kTrain) {
      for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
    } else {
      files.push_back("test_batch.bin");
    }
  } else {
    files.push_back(split == Split::kTrain ? "train.bin" : "test.bin");
  }
  Dataset ds;
  ds.name = classes == 10 ? "cifar10" : "cifar100";
  ds.height = ds.width = kSide;
  ds.channels = 3;
  ds.num_classes = classes;
  if (classes == 10) ds.class_names = Cifar10Names();
  for (const std::string& f : files) {
    HYBRID_RETURN_IF_ERROR(AppendBatch(root / f, classes == 10 ? 1 : 2, &ds));
  }
  return ds;
}

}  // namespace hybrid::data
