#include "graph/model_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "schema/model_generated.h"
#include "test_graphs.h"

namespace hybrid::graph {
namespace {

using testing::TinyHybridGraph;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "hybrid_" + std::to_string(::getpid()) + "_" + name;
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void ExpectSameGraph(const Graph& a, const Graph& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    ASSERT_EQ(a.tensors[i].bytes, b.tensors[i].bytes);
    if (a.tensors[i].bytes) {
      EXPECT_EQ(std::memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].bytes), 0);
    }
  }
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    EXPECT_EQ(a.nodes[i].name, b.nodes[i].name);
    EXPECT_EQ(a.nodes[i].op, b.nodes[i].op);
    EXPECT_EQ(a.nodes[i].inputs, b.nodes[i].inputs);
    EXPECT_EQ(a.nodes[i].partition, b.nodes[i].partition);
    EXPECT_EQ(a.nodes[i].attrs.index(), b.nodes[i].attrs.index());
  }
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.input_mean, b.input_mean);
  EXPECT_EQ(a.input_std, b.input_std);
  EXPECT_EQ(a.class_names, b.class_names);
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    EXPECT_EQ(a.outputs[i].name, b.outputs[i].name);
    EXPECT_EQ(a.outputs[i].kind, b.outputs[i].kind);
  }
}

TEST(ModelFile, RoundTripThroughFile) {
  Graph g = TinyHybridGraph();
  std::string path = TempPath("roundtrip.hybrid");
  ASSERT_TRUE(WriteModelFile(g, path).ok());
  auto loaded = LoadModelFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  ExpectSameGraph(g, *loaded);
  // Weights are used in place, aligned for SIMD loads.
  for (const Tensor& t : loaded->tensors) {
    if (t.is_constant()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % kWeightAlignment, 0u);
    }
  }
  const auto& conv = std::get<Conv2dAttrs>(loaded->nodes[loaded->FindNode("conv2")].attrs);
  EXPECT_EQ(conv.pad_top, 1);
  EXPECT_EQ(conv.kernel_w, 3);
  std::remove(path.c_str());
}

TEST(ModelFile, RoundTripQuantizationAttributes) {
  GraphBuilder b("q");
  TensorId x = b.Input("x", {5, 5, 3});
  Conv2dAttrs c;
  c.kernel_h = 3;
  c.kernel_w = 1;
  c.stride_h = 2;
  c.dilation_w = 1;
  c.groups = 3;
  c.pad_value = 1.f;
  c.quant.weight_precision = Precision::kInt4;
  c.quant.activation_precision = Precision::kInt2;
  c.quant.act_scale = 0.25f;
  c.quant.act_zero_point = 1;
  c.quant.act_signed = true;
  TensorId w = b.Constant("w", {6, 3, 1, 1}, testing::RandomValues(18, 1));
  TensorId y = b.Conv2d("conv", x, w, -1, c);
  Pool2dAttrs p;
  p.kernel_h = p.kernel_w = 2;
  p.count_include_pad = true;
  p.pad_left = 1;
  TensorId z = b.Pool("pool", OpType::kAvgPool2d, y, p);
  TensorId h = b.Hardtanh("ht", z, -2.f, 3.f);
  b.Output("out", b.Concat("cat", {h, h}, 3), OutputKind::kOther);
  auto g = std::move(b).Build();
  ASSERT_TRUE(g.ok()) << g.message();
  auto bytes = SerializeModel(*g);
  ASSERT_TRUE(bytes.ok());
  auto loaded = LoadModelFromMemory(bytes->data(), bytes->size());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  const auto& lc = std::get<Conv2dAttrs>(loaded->nodes[0].attrs);
  EXPECT_EQ(lc.stride_h, 2);
  EXPECT_EQ(lc.groups, 3);
  EXPECT_EQ(lc.pad_value, 1.f);
  EXPECT_EQ(lc.quant.weight_precision, Precision::kInt4);
  EXPECT_EQ(lc.quant.activation_precision, Precision::kInt2);
  EXPECT_EQ(lc.quant.act_scale, 0.25f);
  EXPECT_EQ(lc.quant.act_zero_point, 1);
  EXPECT_TRUE(lc.quant.act_signed);
  const auto& lp = std::get<Pool2dAttrs>(loaded->nodes[1].attrs);
  EXPECT_TRUE(lp.count_include_pad);
  EXPECT_EQ(lp.pad_left, 1);
  EXPECT_EQ(std::get<HardtanhAttrs>(loaded->nodes[2].attrs).max_val, 3.f);
  EXPECT_EQ(std::get<ConcatAttrs>(loaded->nodes[3].attrs).axis, 3);
}

TEST(ModelFile, MisalignedMemoryIsCopied) {
  auto bytes = SerializeModel(TinyHybridGraph());
  ASSERT_TRUE(bytes.ok());
  std::vector<uint8_t> shifted(bytes->size() + 1);
  std::memcpy(shifted.data() + 1, bytes->data(), bytes->size());
  auto loaded = LoadModelFromMemory(shifted.data() + 1, bytes->size());
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  for (const Tensor& t : loaded->tensors) {
    if (t.is_constant()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % kWeightAlignment, 0u);
    }
  }
}

void ExpectRefused(const std::vector<uint8_t>& bytes, const std::string& needle) {
  std::string path = TempPath("bad.hybrid");
  WriteBytes(path, bytes);
  auto g = LoadModelFile(path);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find(needle), std::string::npos) << g.message();
  EXPECT_NE(g.message().find(path), std::string::npos) << g.message();
  std::remove(path.c_str());
}

TEST(ModelFile, RefusesEmptyFile) { ExpectRefused({}, "empty"); }

TEST(ModelFile, RefusesMissingFile) {
  auto g = LoadModelFile("/nonexistent/model.hybrid");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.message().find("No such file"), std::string::npos) << g.message();
}

TEST(ModelFile, RefusesOtherFiles) {
  std::vector<uint8_t> text(200, 'a');
  ExpectRefused(text, "not a hybrid model file");
}

TEST(ModelFile, RefusesTruncatedFiles) {
  auto bytes = SerializeModel(TinyHybridGraph());
  ASSERT_TRUE(bytes.ok());
  // Cut inside the weights, and inside the FlatBuffer header.
  std::vector<uint8_t> cut(bytes->begin(), bytes->end() - 100);
  ExpectRefused(cut, "truncated");
  std::vector<uint8_t> cut2(bytes->begin(), bytes->begin() + 64);
  ExpectRefused(cut2, "truncated");
  // Cut by every length that stays inside the last buffer's padding: nothing read is missing, but
  // the copy is not the file that was written.
  for (size_t n = 1; n < kWeightAlignment; ++n) {
    std::vector<uint8_t> short_copy(bytes->begin(), bytes->end() - n);
    ExpectRefused(short_copy, "truncated");
  }
  std::vector<uint8_t> longer = *bytes;
  longer.push_back(0);
  ExpectRefused(longer, "bytes follow the weights");
}

flatbuffers::Offset<fb::Model> MinimalModel(flatbuffers::FlatBufferBuilder& b, uint32_t version,
                                            std::vector<int64_t> shape, fb::OpType op) {
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors = {
      fb::CreateTensor(b, b.CreateString("x"), b.CreateVector(shape)),
      fb::CreateTensor(b, b.CreateString("y"), b.CreateVector(std::vector<int64_t>{}))};
  std::vector<uint32_t> in = {0}, out = {1};
  std::vector<flatbuffers::Offset<fb::Node>> nodes = {
      fb::CreateNode(b, b.CreateString("relu"), op, b.CreateVector(in), b.CreateVector(out))};
  std::vector<flatbuffers::Offset<fb::Output>> outputs = {
      fb::CreateOutput(b, b.CreateString("y"), 1, fb::OutputKind::OutputKind_Final)};
  return fb::CreateModel(b, version, b.CreateString("m"), b.CreateVector(tensors),
                         b.CreateVector(nodes), b.CreateVector(in), b.CreateVector(outputs));
}

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& b,
                            flatbuffers::Offset<fb::Model> model) {
  fb::FinishSizePrefixedModelBuffer(b, model);
  std::vector<uint8_t> bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  // Padded to the alignment as the format lays files out (here with an empty weight section).
  bytes.resize((bytes.size() + kWeightAlignment - 1) / kWeightAlignment * kWeightAlignment, 0);
  return bytes;
}

TEST(ModelFile, HandCraftedMinimalModelLoads) {
  flatbuffers::FlatBufferBuilder b;
  auto bytes = Finish(b, MinimalModel(b, kModelFormatVersion, {-1, 4}, fb::OpType_Relu));
  auto g = LoadModelFromMemory(bytes.data(), bytes.size());
  ASSERT_TRUE(g.ok()) << g.message();
  EXPECT_EQ(g->tensors[1].shape, (Shape{kBatchDim, 4}));
}

TEST(ModelFile, RefusesWrongVersion) {
  flatbuffers::FlatBufferBuilder b;
  ExpectRefused(Finish(b, MinimalModel(b, 99, {-1, 4}, fb::OpType_Relu)), "version 99");
}

TEST(ModelFile, RefusesAbsurdDimensions) {
  flatbuffers::FlatBufferBuilder b;
  ExpectRefused(
      Finish(b, MinimalModel(b, kModelFormatVersion, {-1, int64_t{1} << 40}, fb::OpType_Relu)),
      "dimension");
  flatbuffers::FlatBufferBuilder b2;
  ExpectRefused(Finish(b2, MinimalModel(b2, kModelFormatVersion, std::vector<int64_t>(100, 2),
                                        fb::OpType_Relu)),
                "rank");
}

TEST(ModelFile, RefusesUnknownOp) {
  flatbuffers::FlatBufferBuilder b;
  ExpectRefused(
      Finish(b, MinimalModel(b, kModelFormatVersion, {-1, 4}, static_cast<fb::OpType>(200))),
      "unknown op");
}

// Random corruption anywhere must give an error or a valid graph, never a crash (run under
// the sanitizer build by scripts/test).
TEST(ModelFile, SurvivesRandomCorruption) {
  auto bytes = SerializeModel(TinyHybridGraph());
  ASSERT_TRUE(bytes.ok());
  std::mt19937 rng(42);
  int refused = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> bad = *bytes;
    int flips = 1 + static_cast<int>(rng() % 4);
    // Most trials corrupt the FlatBuffer part, where the structure lives.
    size_t region = trial % 4 == 0 ? bad.size() : std::min<size_t>(bad.size(), 2048);
    for (int f = 0; f < flips; ++f) bad[rng() % region] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (trial % 7 == 0) bad.resize(rng() % bad.size());
    alignas(64) static uint8_t aligned[1 << 16];
    ASSERT_LE(bad.size(), sizeof(aligned));
    std::memcpy(aligned, bad.data(), bad.size());
    auto g = LoadModelFromMemory(aligned, bad.size());
    if (!g.ok()) {
      ++refused;
      EXPECT_FALSE(g.message().empty());
    }
  }
  EXPECT_GT(refused, 500);
}

}  // namespace
}  // namespace hybrid::graph
