// The integer kernels against their reference twins, bit for bit, on randomized shapes, with the
// dispatch forced to every SIMD target this machine supports; and the twin against the float
// reference convolution on the dequantized integers, which ties it to the ref backend.
#include "kernels/int8.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/ref.h"
#include "tests/kernels/random_transform.h"
#include "tests/kernels/scratch.h"
#include "tests/kernels/target_printer.h"

namespace hybrid::kernels {
namespace {

class Int8PerTarget : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override { ForceTarget(GetParam().bits); }
  void TearDown() override { ForceTarget(0); }
};

ActivationQuant RandomQuant(std::mt19937& rng) {
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  ActivationQuant q;
  const int bits = std::vector<int>{2, 4, 8}[u(0, 2)];
  q.scale = std::uniform_real_distribution<float>(0.01f, 0.3f)(rng);
  if (u(0, 1) == 1) {  // signed
    q.qmin = -(1 << (bits - 1));
    q.qmax = (1 << (bits - 1)) - 1;
    q.offset = 128;
    q.zero_point = 0;
  } else {
    q.qmin = 0;
    q.qmax = (1 << bits) - 1;
    q.zero_point = u(0, q.qmax);
  }
  return q;
}

std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float range) {
  std::uniform_real_distribution<float> d(-range, range);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST_P(Int8PerTarget, QuantizeMatchesRef) {
  std::mt19937 rng(11);
  for (int channels : {1, 3, 17, 64, 65, 200}) {
    for (int groups : {1, 2}) {
      if (channels % groups) continue;
      ActivationQuant q = RandomQuant(rng);
      const int64_t pixels = 7;
      auto x = RandomFloats(pixels * channels, rng, 3.f);
      x[0] = 0.5f * q.scale;  // a tie: rounds to even
      const size_t n = pixels * groups * Int8Channels(channels / groups);
      std::vector<uint8_t> got(n, 0xAB), want(n, 0xCD);
      QuantizeU8(pixels, channels, groups, q, x.data(), got.data());
      QuantizeU8Ref(pixels, channels, groups, q, x.data(), want.data());
      EXPECT_EQ(got, want) << "channels " << channels;
    }
  }
}

// Completes a convolution of `p`'s geometry with random quantization, weights of wbits bits,
// pad value and output, runs Int8Conv2d over the output rows split at `splits` (ascending, within
// the rows), each call with scratch of its own unless `no_scratch`, and checks it bit for bit
// against the reference twin; with weights of 4 bits or fewer, Int4Conv2d too. Returns whether
// the 4-bit kernel was checked. With `extreme` +1 or -1, every weight is +-wmax and every input
// 255, the largest products the kernels' sums must hold.
bool ExpectConvMatchesRef(Conv2dParams p, int wbits, OutputKind kind, std::vector<int> splits,
                          std::mt19937& rng, const std::string& what, bool no_scratch = false,
                          int extreme = 0) {
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  EXPECT_TRUE(Int8ConvSupported(p)) << what;
  ActivationQuant q = RandomQuant(rng);
  const int in_c = p.in_c, cg = in_c / p.groups, taps = p.kernel_h * p.kernel_w;
  const int wmax = (1 << (wbits - 1)) - 1;
  std::vector<int8_t> w(static_cast<size_t>(p.out_c) * taps * cg);
  for (int8_t& v : w) v = static_cast<int8_t>(extreme != 0 ? extreme * wmax : u(-wmax, wmax));
  auto x = RandomFloats(static_cast<size_t>(p.batch) * p.in_h * p.in_w * in_c, rng, 2.f);
  if (extreme != 0) {
    q.qmin = 0;
    q.qmax = 255;
    q.offset = 0;
    q.zero_point = 0;
    for (float& v : x) v = 1e4f;  // quantizes to 255
  }
  std::vector<uint8_t> qx(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.groups *
                          Int8Channels(cg));
  QuantizeU8Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, in_c, p.groups, q, x.data(),
                qx.data());
  std::vector<uint8_t> pad(static_cast<size_t>(p.groups) * Int8Channels(cg),
                           QuantizeOneU8(q, u(0, 1) ? 0.f : 0.7f));
  std::vector<int8_t> packed(Int8ConvPackedWeightsBytes(p));
  PackInt8ConvWeights(p, w.data(), packed.data());
  std::vector<int32_t> sums(p.out_c);
  Int8ConvWeightSums(p, w.data(), sums.data());
  std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
  Int8ConvIndirection(p, offsets.data());
  std::vector<int32_t> zero(p.out_c);
  for (int c = 0; c < p.out_c; ++c) zero[c] = q.input_zero() * sums[c];
  const int rows = p.batch * p.out_h;
  RandomOutput out(kind, p.out_c, p.groups, 255 * 127 * taps * cg, rng);
  EXPECT_TRUE(out.ok()) << what;
  if (!out.ok()) return false;
  const size_t bytes = static_cast<size_t>(rows) * p.out_w * OutputPixelBytes(out.o, p.out_c);
  std::vector<unsigned char> got(bytes, 0), want(bytes, 0);
  ConvOutput o = out.o;
  o.data = want.data();
  Int8Conv2dRef(p, qx.data(), pad.data(), w.data(), q.input_zero(), o, 0, rows);
  splits.insert(splits.begin(), 0);
  splits.push_back(rows);
  // conv(begin, end, scratch) on each range between splits, with scratch of its own.
  auto run_splits = [&](auto conv) {
    for (size_t i = 0; i + 1 < splits.size(); ++i) {
      Scratch scratch(p, splits[i + 1] - splits[i]);
      conv(splits[i], splits[i + 1], no_scratch ? nullptr : scratch.data);
    }
  };
  o.data = got.data();
  run_splits([&](int begin, int end, uint8_t* scratch) {
    Int8Conv2d(p, qx.data(), pad.data(), packed.data(), zero.data(), offsets.data(), o, begin, end,
               scratch);
  });
  EXPECT_EQ(got, want) << what << " kind " << static_cast<int>(kind);
  if (wbits > 4) return false;
  // The same weights stored as nibbles give the same result.
  std::vector<uint8_t> nibbles(Int4ConvPackedWeightsBytes(p));
  PackInt4ConvWeights(p, w.data(), nibbles.data());
  std::vector<unsigned char> got4(bytes, 0);
  o.data = got4.data();
  run_splits([&](int begin, int end, uint8_t* scratch) {
    Int4Conv2d(p, qx.data(), pad.data(), nibbles.data(), zero.data(), offsets.data(), o, begin, end,
               scratch);
  });
  EXPECT_EQ(got4, want) << what << " int4, kind " << static_cast<int>(kind);
  return true;
}

// Output size of p's input, kernel, stride, dilation and top/left padding with bottom and right
// padding pb and pr; false where the kernel does not fit.
bool SetOutputSize(Conv2dParams& p, int pb, int pr) {
  const int sh = p.in_h + p.pad_top + pb - ((p.kernel_h - 1) * p.dilation_h + 1);
  const int sw = p.in_w + p.pad_left + pr - ((p.kernel_w - 1) * p.dilation_w + 1);
  if (sh < 0 || sw < 0) return false;
  p.out_h = sh / p.stride_h + 1;
  p.out_w = sw / p.stride_w + 1;
  return true;
}

TEST_P(Int8PerTarget, ConvMatchesRefBitForBit) {
  std::mt19937 rng(13);
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int checked = 0, checked4 = 0;
  for (int in_c : {1, 3, 17, 63, 64, 65, 200}) {
    for (int trial = 0; trial < 10; ++trial) {
      Conv2dParams p;
      p.batch = u(1, 2);
      p.groups = in_c % 2 == 0 && u(0, 3) == 0 ? 2 : 1;
      p.in_c = in_c;
      p.out_c = p.groups * u(1, 40);
      p.in_h = u(1, 9);
      p.in_w = u(0, 3) == 0 ? u(10, 24) : u(1, 9);
      p.kernel_h = u(1, 3);
      p.kernel_w = u(1, 3);
      p.stride_h = p.stride_w = u(1, 2);
      p.dilation_h = u(1, 2);
      p.dilation_w = u(1, 2);
      p.pad_top = u(0, 2);
      p.pad_left = u(0, 2);
      const int pad_bottom = u(0, 2);
      int pad_right = u(0, 2);
      SometimesOneWide(u, &p, &pad_right);
      if (!SetOutputSize(p, pad_bottom, pad_right)) continue;
      const int wbits = std::vector<int>{2, 4, 8}[u(0, 2)];
      const int rows = p.batch * p.out_h;
      const std::string what =
          GetParam().name + " in_c " + std::to_string(in_c) + " trial " + std::to_string(trial);
      // Without scratch the kernels run without AMX: the same results.
      checked4 += ExpectConvMatchesRef(p, wbits, static_cast<OutputKind>(trial % 4), {rows / 2},
                                       rng, what, trial == 9);
      ++checked;
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(checked, 50);
  EXPECT_GT(checked4, 20);
}

// The largest sums every kernel must hold: every input 255 and every weight +-7 (4-bit) or
// +-127, over taps of up to 520 channels (130 quads: the 4-bit kernel's 16-bit sums on AVX2 are
// widened every 8) and 9 taps.
TEST_P(Int8PerTarget, ConvOfTheLargestProductsMatchesRefBitForBit) {
  std::mt19937 rng(29);
  for (int in_c : {64, 200, 520}) {
    for (int kernel : {1, 3}) {
      for (int wbits : {4, 8}) {
        for (int sign : {1, -1}) {
          Conv2dParams p;
          p.in_c = in_c;
          p.out_c = 19;
          p.in_h = p.in_w = 5;
          p.kernel_h = p.kernel_w = kernel;
          p.out_h = p.out_w = 5 - kernel + 1;
          const std::string what = GetParam().name + " in_c " + std::to_string(in_c) + " kernel " +
                                   std::to_string(kernel) + " bits " + std::to_string(wbits) +
                                   " sign " + std::to_string(sign);
          ExpectConvMatchesRef(p, wbits, OutputKind::kFloat, {1}, rng, what, false, sign);
        }
      }
    }
  }
}

// The ways the AMX kernel walks a layer (kernels/int8.cc), each against the twin on every
// target: stride-1 layers whose taps fill rows of 64 bytes read tiles straight from a padded
// copy of the input (with groups, dilation, uneven padding, several images, and row ranges that
// start and end inside images); weights past 1 MiB run pairs of blocks outermost; 4-bit weights
// are unpacked a pair at a time where the rows give 4 tiles or more, a chunk at a time elsewhere.
TEST_P(Int8PerTarget, ConvTileWalksMatchRefBitForBit) {
  std::mt19937 rng(29);
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 24; ++trial) {
    Conv2dParams p;
    p.batch = u(1, 3);
    p.groups = u(0, 2) == 0 ? 2 : 1;
    p.in_c = p.groups * 64 * u(1, 3);
    p.out_c = p.groups * u(1, 50);
    p.in_h = u(1, 13);
    p.in_w = u(1, 13);
    p.kernel_h = u(1, 3);
    p.kernel_w = u(1, 3);
    p.dilation_h = u(1, 2);
    p.dilation_w = u(1, 2);
    p.pad_top = u(0, 2);
    p.pad_left = u(0, 2);
    if (!SetOutputSize(p, u(0, 2), u(0, 2))) continue;
    const int rows = p.batch * p.out_h;
    std::vector<int> splits;
    for (int r = u(1, 4); r < rows; r += u(1, 7)) splits.push_back(r);
    ExpectConvMatchesRef(p, u(0, 1) ? 4 : 8, static_cast<OutputKind>(trial % 4), splits, rng,
                         GetParam().name + " direct, trial " + std::to_string(trial));
    if (HasFailure()) return;
  }
  // 3x3, 512 channels in, 280 out (the last block partial): 1.3 MB of int8 weights.
  Conv2dParams big;
  big.in_c = 512;
  big.out_c = 280;
  big.in_h = 4;
  big.in_w = 5;
  big.kernel_h = big.kernel_w = 3;
  big.pad_top = big.pad_left = 1;
  ASSERT_TRUE(SetOutputSize(big, 1, 1));
  ExpectConvMatchesRef(big, 8, OutputKind::kU8, {}, rng, GetParam().name + " big weights");
  ExpectConvMatchesRef(big, 4, OutputKind::kFloat, {2}, rng, GetParam().name + " big int4");
}

INSTANTIATE_TEST_SUITE_P(Targets, Int8PerTarget, ::testing::ValuesIn(SupportedTargets()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(Int8Conv2dRef, EqualsFloatConvolutionOfDequantizedValues) {
  std::mt19937 rng(17);
  Conv2dParams p;
  p.in_h = p.in_w = 5;
  p.in_c = 6;
  p.out_c = 4;
  p.kernel_h = p.kernel_w = 3;
  p.pad_top = p.pad_left = 1;
  p.out_h = p.out_w = 5;
  ActivationQuant q;
  q.scale = 0.1f;
  q.zero_point = 7;
  q.qmax = 15;
  auto x = RandomFloats(5 * 5 * 6, rng, 1.f);
  std::vector<int8_t> w(4 * 9 * 6);
  for (int8_t& v : w) v = static_cast<int8_t>(std::uniform_int_distribution<int>(-7, 7)(rng));
  std::vector<uint8_t> qx(5 * 5 * 8);
  QuantizeU8Ref(25, 6, 1, q, x.data(), qx.data());
  std::vector<uint8_t> pad(8, static_cast<uint8_t>(q.input_zero()));
  std::vector<float> mul(4, 1.f), got(100), want(100);
  ConvOutput o;
  o.transform.mul = mul.data();
  o.data = got.data();
  Int8Conv2dRef(p, qx.data(), pad.data(), w.data(), 7, o, 0, 5);
  // The same sums in float: integers (q - zp) and w, small enough to be exact.
  std::vector<float> fx(5 * 5 * 6), fw(w.begin(), w.end());
  for (int i = 0; i < 150; ++i) fx[i] = static_cast<float>(qx[i / 6 * 8 + i % 6] - 7);
  Conv2dF32Ref(p, fx.data(), fw.data(), nullptr, want.data(), 0, 5);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace hybrid::kernels
