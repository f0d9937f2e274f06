// Dataset readers on the real Fashion-MNIST files and on small files each test writes, broken
// in every way a reader must notice.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/dataset.h"

namespace hybrid::data {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("hybrid_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::ofstream(path_ / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return (path_ / name).string();
  }
  std::string WriteGz(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::string path = (path_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return path;
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<uint8_t> Idx(std::vector<uint32_t> dims, size_t data_bytes, uint8_t type = 0x08) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  }
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<uint8_t>(i * 7));
  return b;
}

void ExpectError(const Status& s, const std::string& needle) {
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}
template <typename T>
void ExpectError(const Result<T>& r, const std::string& needle) {
  ExpectError(r.ok() ? Status::Ok() : r.status(), needle);
}

TEST(FashionMnist, RealTestSplit) {
  auto ds = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTest);
  ASSERT_TRUE(ds.ok()) << ds.message();
  EXPECT_EQ(ds->count, 10000);
  EXPECT_EQ(ds->height, 28);
  EXPECT_EQ(ds->width, 28);
  EXPECT_EQ(ds->channels, 1);
  EXPECT_EQ(ds->images.size(), 10000u * 784);
  std::vector<int> per_class(10);
  for (int32_t l : ds->labels) per_class[l]++;
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 1000) << "class " << c;
  // Images are mostly dark background with bright garments.
  double mean = std::accumulate(ds->images.begin(), ds->images.end(), 0.0) / ds->images.size();
  EXPECT_GT(mean / 255, 0.2);
  EXPECT_LT(mean / 255, 0.4);
  EXPECT_EQ(ds->class_names.at(9), "Ankle boot");
}

TEST(FashionMnist, RealTrainSplitFirstLabel) {
  auto ds = LoadDataset("fashion-mnist", "", Split::kTrain);
  ASSERT_TRUE(ds.ok()) << ds.message();
  EXPECT_EQ(ds->count, 60000);
  EXPECT_EQ(ds->labels[0], 9);  // the dataset's first training image is an ankle boot
}

TEST(Idx, GzippedAndRawReadTheSame) {
  TempDir dir;
  auto bytes = Idx({3, 4, 5}, 60);
  auto raw = LoadIdx(dir.Write("a.idx", bytes));
  auto gz = LoadIdx(dir.WriteGz("a.idx.gz", bytes));
  ASSERT_TRUE(raw.ok() && gz.ok()) << raw.message() << gz.message();
  EXPECT_EQ(raw->dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(raw->dims, gz->dims);
  EXPECT_EQ(raw->data, gz->data);
  EXPECT_EQ(raw->data[59], static_cast<uint8_t>(59 * 7));
}

TEST(Idx, BrokenFilesAreClearErrors) {
  TempDir dir;
  ExpectError(LoadIdx((dir.path() / "missing").string()), "file not found");
  ExpectError(LoadIdx(dir.Write("empty", {})), "only 0 bytes");
  ExpectError(LoadIdx(dir.Write("magic", {1, 2, 3, 4, 5})), "not an IDX file: magic 01020304");
  ExpectError(LoadIdx(dir.Write("type", Idx({2}, 2, 0x0d))), "data type 0x0d");
  ExpectError(LoadIdx(dir.Write("rank", {0, 0, 8, 9})), "rank 9");
  ExpectError(LoadIdx(dir.Write("zero", Idx({0}, 0))), "dimension 1 is 0");
  // Absurd dimensions are refused from the header, before any allocation.
  ExpectError(LoadIdx(dir.Write("absurd", Idx({0x7fffffff, 0x7fffffff}, 0))), "claim more than");
  ExpectError(LoadIdx(dir.Write("short_header", {0, 0, 8, 2, 0, 0, 0, 1})), "truncated IDX header");
  ExpectError(LoadIdx(dir.Write("truncated", Idx({10, 10}, 99))),
              "is truncated: expected 100 bytes of data, got 99");
  ExpectError(LoadIdx(dir.Write("trailing", Idx({10}, 11))), "unexpected bytes after");
  auto gz = Idx({100}, 100);
  std::string path = dir.WriteGz("cut.gz", gz);
  auto size = fs::file_size(path);
  fs::resize_file(path, size - 12);  // cut inside the stream: zlib reports it
  auto cut = LoadIdx(path);
  ASSERT_FALSE(cut.ok());
  // Corrupt the deflate data itself.
  std::ifstream in(dir.WriteGz("bad.gz", Idx({1000}, 1000)), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t i = 12; i < bytes.size() - 8; ++i) bytes[i] ^= 0x5a;
  auto bad = LoadIdx(dir.Write("bad2.gz", bytes));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("bad2.gz"), std::string::npos) << bad.message();
}

TEST(FashionMnist, InconsistentFilesAreClearErrors) {
  TempDir dir;
  ExpectError(LoadFashionMnist((dir.path() / "nowhere").string(), Split::kTest), "not found");
  ExpectError(LoadFashionMnist(dir.path().string(), Split::kTest), "t10k-images-idx3-ubyte.gz");
  dir.Write("t10k-images-idx3-ubyte", Idx({3, 2, 2}, 12));
  dir.WriteGz("t10k-labels-idx1-ubyte.gz", Idx({4}, 4));
  ExpectError(LoadFashionMnist(dir.path().string(), Split::kTest), "holds 3 images but");
  std::vector<uint8_t> labels = Idx({3}, 0);
  labels.insert(labels.end(), {1, 12, 3});
  dir.WriteGz("t10k-labels-idx1-ubyte.gz", labels);
  ExpectError(LoadFashionMnist(dir.path().string(), Split::kTest), "label 12 of sample 1");
  labels.back() = 3;
  labels[labels.size() - 2] = 2;
  dir.WriteGz("t10k-labels-idx1-ubyte.gz", labels);
  auto ok = LoadFashionMnist(dir.path().string(), Split::kTest);
  ASSERT_TRUE(ok.ok()) << ok.message();
  EXPECT_EQ(ok->labels, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ok->height, 2);
}

std::vector<uint8_t> CifarRecords(int label_bytes, const std::vector<int>& labels) {
  std::vector<uint8_t> b;
  for (size_t r = 0; r < labels.size(); ++r) {
    for (int l = 0; l < label_bytes; ++l) b.push_back(static_cast<uint8_t>(labels[r] + l * 0));
    if (label_bytes == 2) b[b.size() - 2] = 7;  // coarse label, ignored
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) b.push_back(static_cast<uint8_t>(c * 100 + p % 50 + r));
    }
  }
  return b;
}

TEST(Cifar, TenAndHundredFromBinaryBatches) {
  TempDir dir;
  fs::create_directories(dir.path() / "cifar-10-batches-bin");
  for (int i = 1; i <= 5; ++i) {
    dir.Write("cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin",
              CifarRecords(1, {i, 9}));
  }
  dir.Write("cifar-10-batches-bin/test_batch.bin", CifarRecords(1, {3}));
  auto train = LoadDataset("cifar10", dir.path().string(), Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.message();
  EXPECT_EQ(train->count, 10);
  EXPECT_EQ(train->labels[0], 1);
  EXPECT_EQ(train->labels[9], 9);
  EXPECT_EQ(train->class_names[9], "truck");
  // Planar CHW becomes HWC: pixel p of channel c sits at p * 3 + c.
  const uint8_t* img = train->image(1);
  EXPECT_EQ(img[5 * 3 + 0], 5 + 1);
  EXPECT_EQ(img[5 * 3 + 2], 200 + 5 + 1);
  auto test = LoadCifar(dir.path().string(), 10, Split::kTest);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(test->count, 1);

  TempDir dir100;
  dir100.Write("test.bin", CifarRecords(2, {99, 0}));
  auto c100 = LoadDataset("cifar100", dir100.path().string(), Split::kTest);
  ASSERT_TRUE(c100.ok()) << c100.message();
  EXPECT_EQ(c100->labels, (std::vector<int32_t>{99, 0}));
  EXPECT_EQ(c100->num_classes, 100);
  ExpectError(LoadDataset("cifar100", dir100.path().string(), Split::kTrain), "train.bin");
  auto bad = CifarRecords(2, {100});
  dir100.Write("test.bin", bad);
  ExpectError(LoadCifar(dir100.path().string(), 100, Split::kTest), "label 100");
  bad.pop_back();
  dir100.Write("test.bin", bad);
  ExpectError(LoadCifar(dir100.path().string(), 100, Split::kTest), "multiple of the 3074-byte");
}

TEST(Datasets, NamesSplitsAndNormalization) {
  ExpectError(LoadDataset("imagenet", "", Split::kTest), "unknown dataset 'imagenet'");
  ExpectError(LoadDataset("cifar10", "", Split::kTest), "--data-dir");
  ExpectError(ParseSplit("validation"), "unknown split 'validation'");
  EXPECT_EQ(*ParseSplit("train"), Split::kTrain);

  Dataset ds;
  ds.name = "tiny";
  ds.count = 1;
  ds.height = 1;
  ds.width = 2;
  ds.channels = 2;
  ds.images = {0, 255, 51, 102};
  ASSERT_TRUE(CheckNormalization(ds, {0.5f, 0.f}, {0.5f, 2.f}).ok());
  std::vector<float> out(4);
  NormalizeImage(ds, 0, {0.5f, 0.f}, {0.5f, 2.f}, out.data());
  EXPECT_FLOAT_EQ(out[0], -1.f);
  EXPECT_FLOAT_EQ(out[1], 0.5f);
  EXPECT_FLOAT_EQ(out[2], -0.6f);
  EXPECT_FLOAT_EQ(out[3], 0.2f);
  NormalizeImage(ds, 0, {}, {}, out.data());
  EXPECT_FLOAT_EQ(out[1], 1.f);
  ExpectError(CheckNormalization(ds, {0.1f, 0.2f, 0.3f}, {1.f}), "mean has 3 values");
  ExpectError(CheckNormalization(ds, {0.1f}, {0.f}), "std 0 is not positive");
}

}  // namespace
}  // namespace hybrid::data
