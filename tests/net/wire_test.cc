// The wire forms are exact: the cloud quantizes the decoded values to the integers (or signs) it
// would have computed from the edge's floats, pixels come back bit for bit, and a whole cloud
// partition fed decoded values answers bit-identically to one fed the floats.
#include "net/wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "engine/executor.h"
#include "engine/layer_params.h"
#include "kernels/int8.h"
#include "tests/net/test_models.h"

namespace hybrid::net {
namespace {

using graph::Precision;

std::vector<float> RandomFloats(size_t n, uint32_t seed, float spread) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, spread);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  // Edge cases: exact zeros, halfway points, far out of range, and NaN.
  if (n > 8) {
    v[0] = 0.f;
    v[1] = -0.f;
    v[2] = 1e9f;
    v[3] = -1e9f;
    v[4] = std::numeric_limits<float>::quiet_NaN();
    v[5] = 0.5f;
    v[6] = -0.5f;
  }
  return v;
}

engine::WireTensor Tensor(Form form, Precision p, float scale, int zero_point, bool is_signed,
                          graph::Shape shape) {
  engine::WireTensor w;
  w.name = "split";
  w.form = form;
  w.shape = std::move(shape);
  w.values = graph::NumElements(w.shape);
  w.quant.weight_precision = p;
  w.quant.activation_precision = p;
  w.quant.act_scale = scale;
  w.quant.act_zero_point = zero_point;
  w.quant.act_signed = is_signed;
  return w;
}

struct IntCase {
  Form form;
  Precision precision;
  float scale;
  int zero_point;
  bool is_signed;
};

class IntegerForms : public ::testing::TestWithParam<IntCase> {};

TEST_P(IntegerForms, DecodedValuesQuantizeToTheSameIntegers) {
  const IntCase c = GetParam();
  // 5 x 3 x 7 values per sample: the packed forms end mid-byte.
  const engine::WireTensor w =
      Tensor(c.form, c.precision, c.scale, c.zero_point, c.is_signed, {5, 3, 7});
  const graph::Graph empty;
  const WireCodec codec(w, empty);
  const int count = 3;
  const std::vector<float> x =
      RandomFloats(static_cast<size_t>(w.values * count), 7, 4 * c.scale * 8);
  std::string bytes;
  codec.Encode(x.data(), count, &bytes);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), codec.SampleBytes(c.form) * count);
  EXPECT_EQ(codec.SampleBytes(c.form), (w.values * graph::Bits(c.precision) + 7) / 8);
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec.Decode(c.form, bytes, count, y.data()).ok());
  const kernels::ActivationQuant q = engine::ActivationQuantOf(w.quant);
  for (size_t j = 0; j < x.size(); ++j) {
    ASSERT_EQ(kernels::QuantizeOneU8(q, y[j]), kernels::QuantizeOneU8(q, x[j]))
        << "value " << j << ": " << x[j] << " came back as " << y[j];
  }
  // The datatype and per-sample shape the protocol carries.
  if (c.form == Form::kInt8) {
    EXPECT_EQ(codec.Datatype(c.form), c.is_signed ? "INT8" : "UINT8");
    EXPECT_EQ(codec.SampleShape(c.form), (std::vector<int64_t>{5, 3, 7}));
  } else {
    EXPECT_EQ(codec.Datatype(c.form), "UINT8");
    EXPECT_EQ(codec.SampleShape(c.form), (std::vector<int64_t>{codec.SampleBytes(c.form)}));
  }
}

INSTANTIATE_TEST_SUITE_P(Forms, IntegerForms,
                         ::testing::Values(IntCase{Form::kInt8, Precision::kInt8, 0.02f, 0, true},
                                           IntCase{Form::kInt8, Precision::kInt8, 0.031f, 17,
                                                   false},
                                           IntCase{Form::kInt4, Precision::kInt4, 0.15f, 8, false},
                                           IntCase{Form::kInt4, Precision::kInt4, 0.2f, 0, true},
                                           IntCase{Form::kInt2, Precision::kInt2, 0.5f, 1, false},
                                           IntCase{Form::kInt2, Precision::kInt2, 0.7f, 0, true}));

TEST(Wire, BitsKeepTheSigns) {
  const engine::WireTensor w = Tensor(Form::kBits, Precision::kBinary, 1, 0, false, {3, 3, 65});
  const graph::Graph empty;
  const WireCodec codec(w, empty);
  const std::vector<float> x = RandomFloats(static_cast<size_t>(w.values * 2), 3, 1);
  std::string bytes;
  codec.Encode(x.data(), 2, &bytes);
  EXPECT_EQ(bytes.size(), 2u * ((3 * 3 * 65 + 7) / 8));
  std::vector<float> y(x.size());
  ASSERT_TRUE(codec.Decode(Form::kBits, bytes, 2, y.data()).ok());
  for (size_t j = 0; j < x.size(); ++j) {
    // As the kernels binarize: negative to -1, everything else (zero, NaN) to +1.
    EXPECT_EQ(y[j], x[j] < 0 ? -1.f : 1.f) << j;
  }
}

TEST(Wire, PixelsComeBackBitForBit) {
  for (int channels : {1, 3}) {
    graph::Graph g;
    g.input_mean =
        channels == 1 ? std::vector<float>{0.286f} : std::vector<float>{0.49f, 0.48f, 0.45f};
    g.input_std =
        channels == 1 ? std::vector<float>{0.353f} : std::vector<float>{0.25f, 0.24f, 0.26f};
    engine::WireTensor w;
    w.name = "image";
    w.form = Form::kPixels;
    w.shape = {4, 5, channels};
    w.values = 20 * channels;
    const WireCodec codec(w, g);
    const int count = 6;
    std::mt19937 rng(channels);
    std::vector<uint8_t> pixels(static_cast<size_t>(w.values * count));
    for (auto& p : pixels) p = static_cast<uint8_t>(rng() % 256);
    pixels[0] = 0;
    pixels[1] = 255;
    // Normalized as the edge normalizes them.
    std::vector<float> x(pixels.size());
    for (size_t j = 0; j < x.size(); ++j) {
      const size_t c = j % static_cast<size_t>(channels);
      x[j] = (static_cast<float>(pixels[j]) / 255.f - g.input_mean[c]) / g.input_std[c];
    }
    std::string bytes;
    codec.Encode(x.data(), count, &bytes);
    ASSERT_EQ(bytes, std::string(pixels.begin(), pixels.end()));
    std::vector<float> y(x.size());
    ASSERT_TRUE(codec.Decode(Form::kPixels, bytes, count, y.data()).ok());
    for (size_t j = 0; j < x.size(); ++j) ASSERT_EQ(y[j], x[j]) << j;
  }
}

TEST(Wire, SizesAndFormsAreChecked) {
  const engine::WireTensor w = Tensor(Form::kInt4, Precision::kInt4, 0.1f, 8, false, {2, 2, 3});
  const graph::Graph empty;
  const WireCodec codec(w, empty);
  std::vector<float> y(24);
  const Status short_input = codec.Decode(Form::kInt4, std::string(5, '\0'), 2, y.data());
  ASSERT_FALSE(short_input.ok());
  EXPECT_NE(short_input.message().find("5 bytes of int4 for 2 samples, expected 12"),
            std::string::npos)
      << short_input.message();
  const Status wrong = codec.Decode(Form::kBits, std::string(4, '\0'), 2, y.data());
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("travels as int4 (or f32), not bits"), std::string::npos);
  // FP32 is always accepted, as is.
  std::vector<float> x = RandomFloats(24, 1, 1);
  std::string raw(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  ASSERT_TRUE(codec.Decode(Form::kF32, raw, 2, y.data()).ok());
  EXPECT_EQ(std::memcmp(y.data(), x.data(), x.size() * 4), 0);  // NaN included, bit for bit
  EXPECT_EQ(codec.Datatype(Form::kF32), "FP32");
  for (const char* name : {"f32", "pixels", "int8", "int4", "int2", "bits"}) {
    auto f = ParseEncoding(name);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(EncodingName(*f), name);
  }
  EXPECT_FALSE(ParseEncoding("fp16").ok());
}

class SplitModels : public ::testing::TestWithParam<std::tuple<Precision, std::string>> {};

TEST_P(SplitModels, TheCloudAnswersTheSameFromTheWireForm) {
  const auto [p, backend] = GetParam();
  auto g = testing::SplitModel(p);
  const auto wire = engine::CloudWire(*g);
  ASSERT_EQ(wire.size(), 1u);
  const Form want = p == Precision::kInt8   ? Form::kInt8
                    : p == Precision::kInt4 ? Form::kInt4
                    : p == Precision::kInt2 ? Form::kInt2
                                            : Form::kBits;
  ASSERT_EQ(wire[0].form, want);
  const WireCodec codec(wire[0], *g);
  const int batch = 5;
  engine::PlanOptions o;
  o.backend = backend;
  o.batch = batch;
  o.scope = engine::Scope::kCloud;
  o.outputs = {"final"};
  auto from_floats = engine::Executor::Create(g, o);
  auto from_wire = engine::Executor::Create(g, o);
  ASSERT_TRUE(from_floats.ok()) << from_floats.message();
  ASSERT_TRUE(from_wire.ok());
  // What the edge's hardtanh could produce, with values on the quantization grid's midpoints too.
  std::vector<float> x = RandomFloats(static_cast<size_t>(wire[0].values * batch), 5, 0.6f);
  for (float& v : x) v = std::isnan(v) ? 0.f : std::clamp(v, -1.f, 1.f);
  std::string bytes;
  codec.Encode(x.data(), batch, &bytes);
  ASSERT_TRUE(codec.Decode(want, bytes, batch, (*from_wire)->Tensor("edge.act")->data).ok());
  std::copy(x.begin(), x.end(), (*from_floats)->Tensor("edge.act")->data);
  ASSERT_TRUE((*from_floats)->Run().ok());
  ASSERT_TRUE((*from_wire)->Run().ok());
  const engine::TensorView a = (*from_floats)->Tensor(g->FindOutput("final")->tensor);
  const engine::TensorView b = (*from_wire)->Tensor(g->FindOutput("final")->tensor);
  for (int64_t j = 0; j < a.size(); ++j) ASSERT_EQ(a.data[j], b.data[j]) << j;
  // The wire form is what makes the difference: a few bits per value instead of 32.
  EXPECT_EQ(codec.SampleBytes(want), (wire[0].values * graph::Bits(p) + 7) / 8);
}

INSTANTIATE_TEST_SUITE_P(Precisions, SplitModels,
                         ::testing::Combine(::testing::Values(Precision::kInt8, Precision::kInt4,
                                                              Precision::kInt2, Precision::kBinary),
                                            ::testing::Values(std::string("ref"),
                                                              std::string("native"))));

}  // namespace
}  // namespace hybrid::net
