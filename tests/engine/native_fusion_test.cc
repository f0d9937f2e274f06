// The thresholds that let the native backend pass binary activations bitpacked: they must give
// exactly the bits of the float computation they replace, or refuse.
#include "engine/native_fusion.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace hybrid::engine::native {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Checks the integer thresholds against f at every sum in [-k, k].
void ExpectExactOverRange(int channels, int32_t k, const std::function<float(int, int32_t)>& f) {
  std::vector<int32_t> threshold;
  std::vector<uint8_t> flip;
  ASSERT_TRUE(IntegerThresholds(channels, k, f, &threshold, &flip));
  for (int c = 0; c < channels; ++c) {
    for (int32_t d = -k; d <= k; ++d) {
      const int32_t seen = flip[c] != 0 ? -d : d;
      ASSERT_EQ(seen < threshold[c], f(c, d) < 0.f) << "channel " << c << " sum " << d;
    }
  }
}

TEST(IntegerThresholds, ReproduceMonotoneFloatChainsExactly) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int channels = 40;
  std::vector<float> mul(channels), bias(channels), scale(channels), shift(channels);
  for (int c = 0; c < channels; ++c) {
    mul[c] = 0.01f * u(rng);
    bias[c] = u(rng);
    scale[c] = c % 5 == 0 ? 0.f : 3.f * u(rng);  // negative, zero and positive scales
    shift[c] = 0.5f * u(rng);
  }
  // A layer's transform, a batchnorm, a hardtanh: the roundings of separate ref nodes.
  auto f = [&](int c, int32_t d) {
    float y = static_cast<float>(d) * mul[c];
    y = y + bias[c];
    y = y * scale[c];
    y = y + shift[c];
    return std::min(std::max(y, -1.f), 1.f);
  };
  ExpectExactOverRange(channels, 576, f);
  // Thresholds at the very ends of the range, and answers that never change.
  ExpectExactOverRange(3, 9, [](int c, int32_t d) {
    return c == 0 ? static_cast<float>(d + 9) : c == 1 ? static_cast<float>(8 - d) : -1.f;
  });
}

TEST(IntegerThresholds, RefuseAnswersThatChangeTwice) {
  std::vector<int32_t> threshold;
  std::vector<uint8_t> flip;
  // |d| - 2: negative in the middle only, as a prelu with a negative slope can make it.
  EXPECT_FALSE(IntegerThresholds(
      1, 10, [](int, int32_t d) { return static_cast<float>(std::abs(d) - 2); }, &threshold,
      &flip));
}

// Random floats of every magnitude, plus the special values.
std::vector<float> Probes(std::mt19937& rng) {
  std::vector<float> xs = {0.f,
                           -0.f,
                           kInf,
                           -kInf,
                           std::nanf(""),
                           1.f,
                           -1.f,
                           std::numeric_limits<float>::max(),
                           -std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::denorm_min()};
  for (int i = 0; i < 20000; ++i) xs.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  std::uniform_real_distribution<float> near(-3.f, 3.f);
  for (int i = 0; i < 20000; ++i) xs.push_back(near(rng));
  return xs;
}

TEST(FloatThresholds, ReproduceBatchnormAndSignForEveryFloat) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  const int channels = 24;
  std::vector<float> scale(channels), shift(channels);
  for (int c = 0; c < channels; ++c) {
    scale[c] = u(rng);
    shift[c] = u(rng);
  }
  scale[3] = 1e-30f;  // a tiny scale: the sign of the shift decides all but huge inputs
  auto f = [&](int c, float x) {
    float y = x * scale[c];
    y = y + shift[c];
    return y < 0.f ? -1.f : 1.f;
  };
  std::vector<float> below, above;
  ASSERT_TRUE(FloatThresholds(channels, f, &below, &above));
  for (float x : Probes(rng)) {
    for (int c = 0; c < channels; ++c) {
      ASSERT_EQ(x < below[c] || x > above[c], f(c, x) < 0.f) << "channel " << c << " x " << x;
    }
  }
}

TEST(FloatThresholds, HandleConstantAnswersAndRefuseWhatIsNoThreshold) {
  std::vector<float> below, above;
  // Always negative, infinities included, and never negative.
  ASSERT_TRUE(FloatThresholds(
      2, [](int c, float x) { return c == 0 ? std::min(std::max(x, -3.f), -2.f) : 1.f; }, &below,
      &above));
  EXPECT_TRUE(-kInf < below[0] || -kInf > above[0]);
  EXPECT_TRUE(kInf < below[0] || kInf > above[0]);
  EXPECT_FALSE(0.f < below[1] || 0.f > above[1]);
  // A zero scale: finite inputs give the shift, infinities NaN. Not one interval: refused.
  EXPECT_FALSE(FloatThresholds(
      1, [](int, float x) { return x * 0.f - 1.f; }, &below, &above));
  // A prelu with a negative slope, then a shift: negative on a bounded interval only.
  EXPECT_FALSE(FloatThresholds(
      1, [](int, float x) { return (x >= 0.f ? x : x * -0.5f) - 1.f; }, &below, &above));
}

}  // namespace
}  // namespace hybrid::engine::native
