// The reference kernels against independent formulations: convolution as an explicit padded
// image times an im2col matrix in double, small cases worked out by hand, and the 2-bit output
// thresholds against the float transform they replace.
#include "kernels/ref.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/int8.h"
#include "kernels/output.h"
#include "tests/kernels/random_transform.h"

namespace hybrid::kernels {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Pads the input explicitly with p.pad_value, then multiplies im2col rows by the weights.
std::vector<double> ConvByIm2col(const Conv2dParams& p, const std::vector<float>& in,
                                 const std::vector<float>& w, const std::vector<float>& bias) {
  const int in_cg = p.in_c / p.groups, out_cg = p.out_c / p.groups;
  const int ph = p.in_h + 2 * (p.kernel_h * p.dilation_h + p.stride_h * p.out_h);
  const int pw = p.in_w + 2 * (p.kernel_w * p.dilation_w + p.stride_w * p.out_w);
  const int off_y = ph / 2 - p.in_h / 2, off_x = pw / 2 - p.in_w / 2;
  std::vector<double> padded(static_cast<size_t>(p.batch) * ph * pw * p.in_c, p.pad_value);
  for (int b = 0; b < p.batch; ++b)
    for (int y = 0; y < p.in_h; ++y)
      for (int x = 0; x < p.in_w; ++x)
        for (int c = 0; c < p.in_c; ++c)
          padded[((static_cast<size_t>(b) * ph + y + off_y) * pw + x + off_x) * p.in_c + c] =
              in[((static_cast<size_t>(b) * p.in_h + y) * p.in_w + x) * p.in_c + c];
  std::vector<double> out(static_cast<size_t>(p.batch) * p.out_h * p.out_w * p.out_c);
  std::vector<double> col(static_cast<size_t>(p.kernel_h) * p.kernel_w * in_cg);
  for (int b = 0; b < p.batch; ++b)
    for (int oy = 0; oy < p.out_h; ++oy)
      for (int ox = 0; ox < p.out_w; ++ox)
        for (int g = 0; g < p.groups; ++g) {
          size_t k = 0;
          for (int ky = 0; ky < p.kernel_h; ++ky)
            for (int kx = 0; kx < p.kernel_w; ++kx)
              for (int c = 0; c < in_cg; ++c) {
                int y = oy * p.stride_h - p.pad_top + ky * p.dilation_h + off_y;
                int x = ox * p.stride_w - p.pad_left + kx * p.dilation_w + off_x;
                col[k++] =
                    padded[((static_cast<size_t>(b) * ph + y) * pw + x) * p.in_c + g * in_cg + c];
              }
          for (int o = g * out_cg; o < (g + 1) * out_cg; ++o) {
            double acc = bias.empty() ? 0 : bias[o];
            for (size_t i = 0; i < col.size(); ++i) acc += col[i] * w[o * col.size() + i];
            out[((static_cast<size_t>(b) * p.out_h + oy) * p.out_w + ox) * p.out_c + o] = acc;
          }
        }
  return out;
}

TEST(Conv2dF32Ref, MatchesIm2colOnRandomShapes) {
  std::mt19937 rng(42);
  int checked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    Conv2dParams p;
    p.batch = 1 + rng() % 2;
    p.groups = 1 + rng() % 3;
    p.in_c = p.groups * (1 + rng() % 5);
    p.out_c = p.groups * (1 + rng() % 4);
    p.in_h = 1 + rng() % 8;
    p.in_w = 1 + rng() % 8;
    p.kernel_h = 1 + rng() % 3;
    p.kernel_w = 1 + rng() % 3;
    p.stride_h = 1 + rng() % 2;
    p.stride_w = 1 + rng() % 2;
    p.dilation_h = 1 + rng() % 2;
    p.dilation_w = 1 + rng() % 2;
    p.pad_top = rng() % 3;
    p.pad_left = rng() % 3;
    int pad_bottom = rng() % 3, pad_right = rng() % 3;
    p.pad_value = trial % 2 == 0 ? 0.f : 1.f;
    int eff_h = (p.kernel_h - 1) * p.dilation_h + 1, eff_w = (p.kernel_w - 1) * p.dilation_w + 1;
    int span_h = p.in_h + p.pad_top + pad_bottom - eff_h,
        span_w = p.in_w + p.pad_left + pad_right - eff_w;
    if (span_h < 0 || span_w < 0) continue;
    p.out_h = span_h / p.stride_h + 1;
    p.out_w = span_w / p.stride_w + 1;
    auto in = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
    auto w =
        Random(static_cast<size_t>(p.out_c) * p.kernel_h * p.kernel_w * (p.in_c / p.groups), rng);
    auto bias = trial % 3 == 0 ? std::vector<float>{} : Random(p.out_c, rng);
    std::vector<float> out(static_cast<size_t>(p.batch) * p.out_h * p.out_w * p.out_c, NAN);
    int rows = p.batch * p.out_h;
    // Two row ranges, as the executor's threads would split them.
    Conv2dF32Ref(p, in.data(), w.data(), bias.empty() ? nullptr : bias.data(), out.data(), 0,
                 rows / 2);
    Conv2dF32Ref(p, in.data(), w.data(), bias.empty() ? nullptr : bias.data(), out.data(), rows / 2,
                 rows);
    auto want = ConvByIm2col(p, in, w, bias);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 1e-4) << "trial " << trial;
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(DenseF32Ref, HandExample) {
  std::vector<float> x = {1, 2, 3, -1, 0, 2};  // batch 2, 3 features
  std::vector<float> w = {1, 0, -1, 0.5f, 0.5f, 0.5f};
  std::vector<float> b = {10, 20};
  std::vector<float> y(4);
  DenseF32Ref(2, 3, 2, x.data(), w.data(), b.data(), y.data(), 0, 2);
  EXPECT_EQ(y, (std::vector<float>{8, 23, 7, 20.5f}));
  DenseF32Ref(2, 3, 2, x.data(), w.data(), nullptr, y.data(), 1, 2);
  EXPECT_EQ(y[2], -3);
}

TEST(ElementwiseRef, HandExamples) {
  std::vector<float> x = {-2, -0.5f, 0, 0.5f, 2, -0.f};
  std::vector<float> y(6);
  ReluF32Ref(6, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0, 0, 0, 0.5f, 2, 0}));
  SignF32Ref(6, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-1, -1, 1, 1, 1, 1}));  // sign(0) = sign(-0) = +1
  HardtanhF32Ref(6, -1, 1, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-1, -0.5f, 0, 0.5f, 1, 0}));
  std::vector<float> slope = {0.1f, 0.2f};
  PreluF32Ref(6, 2, x.data(), slope.data(), y.data());
  EXPECT_FLOAT_EQ(y[0], -0.2f);
  EXPECT_FLOAT_EQ(y[1], -0.1f);
  EXPECT_FLOAT_EQ(y[4], 2.f);
  PreluF32Ref(6, 1, x.data(), slope.data(), y.data());
  EXPECT_FLOAT_EQ(y[1], -0.05f);
  std::vector<float> scale = {2, 3}, shift = {1, -1};
  ChannelAffineF32Ref(6, 2, x.data(), scale.data(), shift.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-3, -2.5f, 1, 0.5f, 5, -1}));
  AddF32Ref(6, x.data(), x.data(), y.data());
  EXPECT_EQ(y[4], 4);
}

TEST(PoolRef, HandExamples) {
  // One 3x3 single-channel image, 2x2 windows, stride 2, padding 1 on top and left.
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  Pool2dParams p;
  p.in_h = p.in_w = 3;
  p.out_h = p.out_w = 2;
  p.kernel_h = p.kernel_w = 2;
  p.stride_h = p.stride_w = 2;
  p.pad_top = p.pad_left = 1;
  std::vector<float> y(4);
  MaxPool2dF32Ref(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 3, 7, 9}));
  AvgPool2dF32Ref(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 2.5f, 5.5f, 7}));
  p.count_include_pad = true;
  AvgPool2dF32Ref(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0.25f, 1.25f, 2.75f, 7}));
  // Negative values: padding must never win a max.
  for (float& v : x) v = -v;
  MaxPool2dF32Ref(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{-1, -2, -4, -5}));
  std::vector<float> g(2);
  std::vector<float> two_c = {1, 10, 2, 20, 3, 30, 6, 60};  // 4 positions, 2 channels
  GlobalAvgPoolF32Ref(1, 4, 2, two_c.data(), g.data());
  EXPECT_EQ(g, (std::vector<float>{3, 30}));
}

TEST(SoftmaxRef, SumsToOneAndSurvivesLargeLogits) {
  std::vector<float> x = {1000, 1000, 0, std::log(3.f)};
  std::vector<float> y(4);
  SoftmaxF32Ref(2, 2, x.data(), y.data());
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 0.5f);
  EXPECT_FLOAT_EQ(y[2], 0.25f);
  EXPECT_FLOAT_EQ(y[3], 0.75f);
}

TEST(ConcatRef, InterleavesRows) {
  std::vector<float> a = {1, 2, 3, 4}, b = {9, 8};  // 2 rows: a has 2 per row, b 1
  const float* ins[] = {a.data(), b.data()};
  int64_t inner[] = {2, 1};
  std::vector<float> y(6);
  ConcatF32Ref(2, 2, ins, inner, y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 2, 9, 3, 4, 8}));
}

TEST(QuantizeRef, BinaryWeightsAreSignTimesMeanAbs) {
  std::vector<float> w = {0.5f, -1.5f, 0.f, 2.f, -4.f, 0.f};  // 2 channels of 3
  std::vector<float> q(6);
  BinarizeWeightsXnorRef(2, 3, w.data(), q.data());
  EXPECT_EQ(q, (std::vector<float>{2.f / 3, -2.f / 3, 2.f / 3, 2, -2, 2}));
}

TEST(QuantizeRef, SymmetricWeights) {
  // 2 bits: levels -1, 0, 1 times max|w|; 4 bits: 7 levels each side.
  std::vector<float> w = {0.9f, -0.2f, 0.5f, 0.3f, 0, 0, 0, 0};
  std::vector<float> q(8), s(2);
  QuantizeWeightsSymmetricRef(2, 2, 4, w.data(), q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 0.9f);
  EXPECT_EQ(s[1], 0.f);
  EXPECT_EQ(q, (std::vector<float>{0.9f, 0, 0.9f, 0, 0, 0, 0, 0}));  // 0.5 / 0.9 rounds to 1
  QuantizeWeightsSymmetricRef(4, 1, 4, w.data(), q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 0.9f / 7);
  EXPECT_FLOAT_EQ(q[1], -2 * 0.9f / 7);  // -0.2 / (0.9/7) = -1.56 -> -2
  EXPECT_FLOAT_EQ(q[2], 4 * 0.9f / 7);   // 3.89 -> 4
}

TEST(QuantizeRef, ActivationsRoundHalfToEvenAndClamp) {
  std::vector<float> x = {0.25f, 0.75f, -0.1f, 10.f, 0.5f};
  std::vector<float> y(5);
  // scale 0.5, unsigned 2-bit, zero point 0: levels 0, 0.5, 1, 1.5.
  FakeQuantizeActivationsRef(5, 0.5f, 0, 0, 3, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0.f, 1.f, 0.f, 1.5f, 0.5f}));  // 0.5 -> 0, 1.5 -> 2 (even)
  FakeQuantizeActivationsRef(5, 0.5f, 1, 0, 3, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0.f, 1.f, 0.f, 1.f, 0.5f}));
}

// Planes2Thresholds against the float transform on every sum of a range: monotone transforms of
// either direction (negative scales flip them), and the transforms it must refuse.
TEST(Planes2Thresholds, GiveTheFloatTransformsPlanesOnEverySum) {
  std::mt19937 rng(11);
  constexpr int kChannels = 37;
  constexpr int32_t kBound = 3000;
  int checked = 0, flipped = 0;
  for (int trial = 0; trial < 60; ++trial) {
    RandomTransform t(kChannels, rng);
    ActivationQuant q{0.05f, static_cast<int>(rng() % 4), 0, 3, 0};
    if (rng() % 2 == 0) q = ActivationQuant{0.05f, 0, -2, 1, 128};
    std::vector<int32_t> th(4 * kChannels);
    const bool ok = Planes2Thresholds(t.o, q, kChannels, kBound, th.data());
    bool negative_slope = false;
    for (int c = 0; c < kChannels; ++c) negative_slope = negative_slope || t.slope[c] < 0.f;
    if (t.o.act == Activation::kPrelu && negative_slope) {
      EXPECT_FALSE(ok) << "trial " << trial;
      continue;
    }
    ASSERT_TRUE(ok) << "trial " << trial;
    for (int c = 0; c < kChannels; ++c) {
      const int32_t t0 = th[c], t1 = th[kChannels + c], t2 = th[2 * kChannels + c];
      ASSERT_LE(t0, t1);
      ASSERT_LE(t1, t2);
      const bool flip = th[3 * kChannels + c] != 0;
      flipped += flip;
      for (int32_t d = -kBound; d <= kBound; ++d) {
        const int want = QuantizeOneU8(q, TransformOne(t.o, c, d)) - q.offset - q.qmin;
        const int v = (d >= t0) + (d >= t1) + (d >= t2);
        ASSERT_EQ(flip ? 3 - v : v, want) << "trial " << trial << " channel " << c << " sum " << d;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
  EXPECT_GT(flipped, 100);  // negative scales make decreasing channels
}

TEST(Planes2Thresholds, RefuseWhatNeedNotBeMonotone) {
  const float mul = 0.1f, slope = -0.25f, huge = 3e38f, nan = std::nanf("");
  const ActivationQuant q{0.05f, 0, 0, 3, 0};
  std::vector<int32_t> th(4);
  OutputTransform t;
  t.mul = &mul;
  EXPECT_TRUE(Planes2Thresholds(t, q, 1, 100, th.data()));
  t.act = Activation::kPrelu;
  t.slope = &slope;
  EXPECT_FALSE(Planes2Thresholds(t, q, 1, 100, th.data()));  // negative slope
  t.act = Activation::kNone;
  t.mul = &huge;
  EXPECT_FALSE(Planes2Thresholds(t, q, 1, 100, th.data()));  // products that overflow
  t.mul = &nan;
  EXPECT_FALSE(Planes2Thresholds(t, q, 1, 100, th.data()));
  t.mul = &mul;
  EXPECT_FALSE(Planes2Thresholds(t, ActivationQuant{0.05f, 0, 0, 15, 0}, 1, 100, th.data()));
  EXPECT_FALSE(Planes2Thresholds(t, ActivationQuant{0.f, 0, 0, 3, 0}, 1, 100, th.data()));
  EXPECT_FALSE(Planes2Thresholds(t, q, 1, INT32_MAX, th.data()));
}

}  // namespace
}  // namespace hybrid::kernels
