// The binary kernels against their reference twins, bit for bit, on randomized shapes, with the
// dispatch forced to every SIMD target this machine supports; and the twins against the float
// reference convolution on sign values, which ties them to the ref backend's semantics.
#include "kernels/binary.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/bit2_lut.h"
#include "kernels/dispatch.h"
#include "kernels/int8.h"
#include "kernels/ref.h"
#include "tests/kernels/random_transform.h"
#include "tests/kernels/scratch.h"
#include "tests/kernels/target_printer.h"

namespace hybrid::kernels {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  // Exact zeros exercise sign(0) = +1.
  for (size_t i = 0; i < n; i += 7) v[i] = 0.f;
  return v;
}

class PerTarget : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override { ForceTarget(GetParam().bits); }
  void TearDown() override { ForceTarget(0); }
};

TEST_P(PerTarget, DispatchUsesTheForcedTarget) { EXPECT_EQ(CurrentTarget(), GetParam().name); }

// The packed weights hold each weight's sign where the layout of binary.h puts it: plain words, or
// on AVX2 (and only there) their low and high nibbles in two rows of 16.
TEST_P(PerTarget, PacksBinaryWeightsInTheTargetsLayout) {
  EXPECT_EQ(BinaryWeightsAsNibbles(), GetParam().name == "avx2");
  std::mt19937 rng(3);
  Conv2dParams p;
  p.in_c = 130;  // 3 words, the last partial
  p.out_c = 2 * 19;
  p.groups = 2;
  p.kernel_h = 1;
  p.kernel_w = 2;
  const int cg = p.in_c / p.groups, out_cg = p.out_c / p.groups, taps = 2;
  const int words = PackedWords(cg), blocks = (out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock;
  const auto w = Random(static_cast<size_t>(p.out_c) * taps * cg, rng);
  const bool nibbles = BinaryWeightsAsNibbles();
  const int planes = nibbles ? 2 : 1;
  std::vector<uint64_t> packed(BinaryConvPackedWeightsWords(p));
  ASSERT_EQ(packed.size(),
            static_cast<size_t>(planes * p.groups * blocks * taps * words * kBinaryOcBlock));
  PackBinaryConvWeights(p, w.data(), packed.data());
  int set = 0;
  for (int g = 0; g < p.groups; ++g) {
    for (int local = 0; local < blocks * kBinaryOcBlock; ++local) {
      const int blk = local / kBinaryOcBlock, lane = local % kBinaryOcBlock;
      const uint64_t* block = packed.data() + static_cast<size_t>(g * blocks + blk) * taps * words *
                                                  planes * kBinaryOcBlock;
      for (int t = 0; t < taps; ++t) {
        for (int c = 0; c < words * 64; ++c) {
          const int bit = c % 64;
          const int plane = nibbles ? bit % 8 / 4 : 0;
          const int pos = nibbles ? bit / 8 * 8 + bit % 4 : bit;
          const uint64_t word =
              block[((t * words + c / 64) * planes + plane) * kBinaryOcBlock + lane];
          const bool negative =
              local < out_cg && c < cg && w[((g * out_cg + local) * taps + t) * cg + c] < 0.f;
          ASSERT_EQ((word >> pos) & 1, negative ? 1u : 0u)
              << "group " << g << " channel " << local << " tap " << t << " input " << c;
          set += negative;
        }
        if (nibbles) {  // the high nibble of every byte of both rows is zero
          for (int wd = 0; wd < 2 * words; ++wd) {
            EXPECT_EQ(block[(t * words * 2 + wd) * kBinaryOcBlock + lane] & 0xF0F0F0F0F0F0F0F0ULL,
                      0u);
          }
        }
      }
    }
  }
  EXPECT_GT(set, 1000);
}

TEST_P(PerTarget, BitpackMatchesRef) {
  std::mt19937 rng(1);
  const float inf = std::numeric_limits<float>::infinity();
  for (int channels : {1, 3, 17, 63, 64, 65, 128, 200}) {
    for (int groups : {1, 2}) {
      if (channels % groups != 0) continue;
      for (bool thresholds : {false, true}) {
        const int64_t pixels = 5;
        auto in = Random(pixels * channels, rng);
        in[1] = std::nanf("");
        in[2] = -inf;
        // Each channel one of: x < t, x > t, never, always.
        auto below = Random(channels, rng), above = Random(channels, rng);
        for (int c = 0; c < channels; ++c) {
          switch (rng() % 4) {
            case 0:
              above[c] = inf;
              break;
            case 1:
              below[c] = -inf;
              break;
            case 2:
              below[c] = -inf, above[c] = inf;
              break;
            default:
              below[c] = inf, above[c] = -inf;
              break;
          }
        }
        const float* lo = thresholds ? below.data() : nullptr;
        const float* hi = thresholds ? above.data() : nullptr;
        const size_t words = pixels * groups * PackedWords(channels / groups);
        std::vector<uint64_t> got(words, ~uint64_t{0}), want(words, 0);
        BitpackF32(pixels, channels, groups, lo, hi, in.data(), got.data());
        BitpackF32Ref(pixels, channels, groups, lo, hi, in.data(), want.data());
        EXPECT_EQ(got, want) << "channels " << channels << " groups " << groups;
      }
    }
  }
}

struct Case {
  Conv2dParams p;
};

Case RandomCase(std::mt19937& rng, int in_c) {
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  Conv2dParams& p = c.p;
  p.batch = u(1, 2);
  p.groups = (in_c % 2 == 0 && u(0, 3) == 0) ? 2 : 1;
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
  p.pad_value = u(0, 1) == 1 ? 1.f : 0.f;
  const int span_h = p.in_h + p.pad_top + pad_bottom - ((p.kernel_h - 1) * p.dilation_h + 1);
  const int span_w = p.in_w + p.pad_left + pad_right - ((p.kernel_w - 1) * p.dilation_w + 1);
  p.out_h = span_h < 0 ? 0 : span_h / p.stride_h + 1;
  p.out_w = span_w < 0 ? 0 : span_w / p.stride_w + 1;
  return c;
}

// The binary kernel against its twin on one layer, with every kind of output: floats, and the
// input of a following binary, integer or 2-bit layer in the layout of a consumer with its own
// groups. The rows are computed in two calls.
::testing::AssertionResult BinaryConvMatchesRef(const Conv2dParams& p, const std::vector<float>& x,
                                                const std::vector<float>& w, std::mt19937& rng) {
  if (!BinaryConvSupported(p)) return ::testing::AssertionFailure() << "not supported";
  const int taps = p.kernel_h * p.kernel_w;
  std::vector<uint64_t> packed_x(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.groups *
                                 PackedWords(p.in_c / p.groups));
  BitpackF32Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, p.in_c, p.groups, nullptr, nullptr,
                x.data(), packed_x.data());
  std::vector<uint64_t> packed_w(BinaryConvPackedWeightsWords(p));
  PackBinaryConvWeights(p, w.data(), packed_w.data());
  std::vector<int32_t> sums(static_cast<size_t>(p.out_c) * taps);
  BinaryConvTapSums(p, w.data(), sums.data());
  std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
  BinaryConvIndirection(p, offsets.data());
  const int rows = p.batch * p.out_h;
  for (OutputKind kind :
       {OutputKind::kFloat, OutputKind::kBits, OutputKind::kU8, OutputKind::kPlanes2}) {
    RandomOutput out(kind, p.out_c, p.groups, taps * (p.in_c / p.groups), rng);
    if (!out.ok()) {
      return ::testing::AssertionFailure() << "no output of kind " << static_cast<int>(kind);
    }
    const size_t bytes = static_cast<size_t>(rows) * p.out_w * OutputPixelBytes(out.o, p.out_c);
    std::vector<unsigned char> got(bytes, 0), want(bytes, 0);
    ConvOutput o = out.o;
    o.data = got.data();
    BinaryConv2d(p, packed_x.data(), packed_w.data(), sums.data(), offsets.data(), o, 0, rows / 2);
    BinaryConv2d(p, packed_x.data(), packed_w.data(), sums.data(), offsets.data(), o, rows / 2,
                 rows);
    o.data = want.data();
    BinaryConv2dRef(p, packed_x.data(), w.data(), o, 0, rows);
    if (got != want) {
      return ::testing::AssertionFailure()
             << "kind " << static_cast<int>(kind) << " groups " << o.groups;
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_P(PerTarget, BinaryConvMatchesRefBitForBit) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int in_c : {1, 3, 17, 63, 64, 65, 200}) {
    for (int trial = 0; trial < 12; ++trial) {
      Case c = RandomCase(rng, in_c);
      const Conv2dParams& p = c.p;
      if (p.out_h <= 0 || p.out_w <= 0) continue;
      const int taps = p.kernel_h * p.kernel_w;
      auto x = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
      auto w = Random(static_cast<size_t>(p.out_c) * taps * (p.in_c / p.groups), rng);
      ASSERT_TRUE(BinaryConvMatchesRef(p, x, w, rng))
          << GetParam().name << " in_c " << in_c << " trial " << trial;
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

// Reductions of every length the kernels count differently: words per tap that no kernel fixes
// at compile time (3, 5), and runs of byte counts (on AVX2 the kernel adds the counts of up
// to 31 words in bytes) that end inside a tap (33 and 63 words in one tap). With random signs, and
// with every sign disagreeing, which fills every byte count to its limit.
TEST_P(PerTarget, BinaryConvOfLongReductionsMatchesRefBitForBit) {
  std::mt19937 rng(11);
  for (int in_c : {150, 320, 2100, 4000}) {
    for (int kernel : {1, 3}) {
      for (bool disagree : {false, true}) {
        Conv2dParams p;
        p.in_c = in_c;
        p.out_c = 21;
        p.in_h = p.in_w = p.out_h = p.out_w = 4;
        p.kernel_h = p.kernel_w = kernel;
        p.pad_top = p.pad_left = kernel / 2;
        p.pad_value = 1.f;
        const int taps = kernel * kernel;
        auto x = Random(static_cast<size_t>(p.in_h) * p.in_w * p.in_c, rng);
        auto w = Random(static_cast<size_t>(p.out_c) * taps * p.in_c, rng);
        if (disagree) {
          for (float& v : x) v = -1.f;
          for (float& v : w) v = 1.f;
        }
        EXPECT_TRUE(BinaryConvMatchesRef(p, x, w, rng))
            << GetParam().name << " in_c " << in_c << " kernel " << kernel << " disagree "
            << disagree;
      }
    }
  }
}

// Binary layers on the AMX tiles (kernels/int8.h) against the binary twin: stride 1, groups of
// whole tile rows (63 channels too: its unused bit meets zero weights), both paddings, dilation,
// several images, row ranges that start and end inside images, every kind of output. Elsewhere
// than on AMX no layer takes that path.
TEST_P(PerTarget, BinaryConvOnTilesMatchesRefBitForBit) {
  std::mt19937 rng(31);
  int checked = 0;
  for (int cg : {63, 64, 128, 192}) {
    for (int trial = 0; trial < 8; ++trial) {
      Case c = RandomCase(rng, cg);
      Conv2dParams& p = c.p;
      p.groups = trial % 3 == 0 ? 2 : 1;
      p.in_c = cg * p.groups;
      p.out_c = p.groups * std::uniform_int_distribution<int>(1, 40)(rng);
      p.batch = std::uniform_int_distribution<int>(1, 3)(rng);
      // Stride 1, with bottom and right padding drawn anew (RandomCase keeps its own to itself).
      const int bottom = std::uniform_int_distribution<int>(0, 2)(rng);
      const int right = std::uniform_int_distribution<int>(0, 2)(rng);
      p.stride_h = p.stride_w = 1;
      p.out_h = p.in_h + p.pad_top + bottom - (p.kernel_h - 1) * p.dilation_h;
      p.out_w = p.in_w + p.pad_left + right - (p.kernel_w - 1) * p.dilation_w;
      if (p.out_h <= 0 || p.out_w <= 0) continue;
      if (GetParam().name != "avx3_amx") {
        EXPECT_FALSE(BinaryConvOnTiles(p)) << GetParam().name;
        ++checked;
        continue;
      }
      ASSERT_TRUE(BinaryConvOnTiles(p)) << "cg " << cg << " trial " << trial;
      const int taps = p.kernel_h * p.kernel_w;
      auto x = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
      auto w = Random(static_cast<size_t>(p.out_c) * taps * cg, rng);
      std::vector<uint64_t> packed_x(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.groups *
                                     PackedWords(cg));
      BitpackF32Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, p.in_c, p.groups, nullptr,
                    nullptr, x.data(), packed_x.data());
      std::vector<int8_t> packed_w(Int8ConvPackedWeightsBytes(p));
      std::vector<int32_t> zero(p.out_c);
      PackBinaryOnTilesWeights(p, w.data(), packed_w.data(), zero.data());
      std::vector<uint8_t> pad(static_cast<size_t>(p.groups) * Int8Channels(cg));
      BinaryOnTilesPadPixel(p, pad.data());
      const int rows = p.batch * p.out_h;
      std::vector<int> cuts = {0};
      for (int r = std::uniform_int_distribution<int>(1, 4)(rng); r < rows;
           r += std::uniform_int_distribution<int>(1, 7)(rng)) {
        cuts.push_back(r);
      }
      cuts.push_back(rows);
      for (OutputKind kind :
           {OutputKind::kFloat, OutputKind::kBits, OutputKind::kU8, OutputKind::kPlanes2}) {
        RandomOutput out(kind, p.out_c, p.groups, taps * cg, rng);
        ASSERT_TRUE(out.ok());
        const size_t bytes = static_cast<size_t>(rows) * p.out_w * OutputPixelBytes(out.o, p.out_c);
        std::vector<unsigned char> got(bytes, 0), want(bytes, 0);
        ConvOutput o = out.o;
        o.data = got.data();
        for (size_t i = 0; i + 1 < cuts.size(); ++i) {
          Scratch scratch(p, cuts[i + 1] - cuts[i]);
          ASSERT_NE(scratch.data, nullptr);
          BinaryConv2dOnTiles(p, packed_x.data(), pad.data(), packed_w.data(), zero.data(), o,
                              cuts[i], cuts[i + 1], scratch.data);
        }
        o.data = want.data();
        BinaryConv2dRef(p, packed_x.data(), w.data(), o, 0, rows);
        ASSERT_EQ(got, want) << "cg " << cg << " trial " << trial << " kind "
                             << static_cast<int>(kind) << " groups " << p.groups << " pad "
                             << p.pad_value;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  // Weights of 2.4 MB as s8 stay with XOR-popcount, whose bits fit L2; so do stride-2 layers.
  Conv2dParams big;
  big.in_c = big.out_c = 512;
  big.in_h = big.in_w = big.out_h = big.out_w = 7;
  big.kernel_h = big.kernel_w = 3;
  big.pad_top = big.pad_left = 1;
  EXPECT_FALSE(BinaryConvOnTiles(big));
  big.in_c = big.out_c = 256;
  EXPECT_EQ(BinaryConvOnTiles(big), GetParam().name == "avx3_amx");
  big.stride_h = big.stride_w = 2;
  big.out_h = big.out_w = 4;
  EXPECT_FALSE(BinaryConvOnTiles(big));
}

ActivationQuant Random2BitQuant(std::mt19937& rng) {
  ActivationQuant q;
  q.scale = std::uniform_real_distribution<float>(0.1f, 0.6f)(rng);
  if (rng() % 2) {
    q.qmin = -2;
    q.qmax = 1;
    q.offset = 128;
  } else {
    q.qmin = 0;
    q.qmax = 3;
    q.zero_point = static_cast<int>(rng() % 4);
  }
  return q;
}

TEST_P(PerTarget, Bitplanes2MatchRef) {
  std::mt19937 rng(21);
  for (int channels : {1, 3, 17, 63, 64, 65, 200}) {
    for (int groups : {1, 2}) {
      if (channels % groups != 0) continue;
      ActivationQuant q = Random2BitQuant(rng);
      const int64_t pixels = 5;
      auto x = Random(pixels * channels, rng);
      for (float& v : x) v *= 2.f;
      const size_t words = pixels * groups * PackedWords(channels / groups) * 2;
      std::vector<uint64_t> got(words, ~uint64_t{0}), want(words, 0);
      QuantizeBitplanes2(pixels, channels, groups, q, x.data(), got.data());
      QuantizeBitplanes2Ref(pixels, channels, groups, q, x.data(), want.data());
      EXPECT_EQ(got, want) << "channels " << channels << " groups " << groups;
    }
  }
}

TEST_P(PerTarget, Bit2ConvMatchesRefBitForBit) {
  std::mt19937 rng(23);
  int checked = 0;
  for (int in_c : {1, 3, 17, 63, 64, 65, 200}) {
    for (int trial = 0; trial < 10; ++trial) {
      Case c = RandomCase(rng, in_c);
      Conv2dParams& p = c.p;
      if (p.out_h <= 0 || p.out_w <= 0) continue;
      p.pad_value = trial % 3 == 0 ? 0.5f : 0.f;
      ActivationQuant q = Random2BitQuant(rng);
      const int taps = p.kernel_h * p.kernel_w;
      auto x = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
      std::vector<int8_t> w(static_cast<size_t>(p.out_c) * taps * (p.in_c / p.groups));
      for (int8_t& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
      const int words = PackedWords(p.in_c / p.groups);
      std::vector<uint64_t> planes(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.groups *
                                   words * 2);
      QuantizeBitplanes2Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, p.in_c, p.groups, q,
                            x.data(), planes.data());
      std::vector<uint64_t> pad(static_cast<size_t>(p.groups) * words * 2);
      Bit2PadPixel(p, q, pad.data());
      std::vector<uint64_t> packed(Bit2ConvPackedWeightsWords(p));
      PackBit2ConvWeights(p, w.data(), packed.data());
      std::vector<int32_t> zero(p.out_c);
      Int8ConvWeightSums(p, w.data(), zero.data());
      const int u_zero = q.zero_point - q.qmin;
      for (int32_t& z : zero) z *= u_zero;
      std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
      BinaryConvIndirection(p, offsets.data());
      const int rows = p.batch * p.out_h;
      for (OutputKind kind :
           {OutputKind::kFloat, OutputKind::kBits, OutputKind::kU8, OutputKind::kPlanes2}) {
        RandomOutput out(kind, p.out_c, p.groups, 3 * taps * (p.in_c / p.groups), rng);
        ASSERT_TRUE(out.ok());
        const size_t bytes = static_cast<size_t>(rows) * p.out_w * OutputPixelBytes(out.o, p.out_c);
        std::vector<unsigned char> got(bytes, 0), want(bytes, 0), via_int8(bytes, 0);
        ConvOutput o = out.o;
        o.data = got.data();
        Bit2Conv2d(p, planes.data(), pad.data(), packed.data(), zero.data(), offsets.data(), o, 0,
                   rows / 2);
        Bit2Conv2d(p, planes.data(), pad.data(), packed.data(), zero.data(), offsets.data(), o,
                   rows / 2, rows);
        o.data = want.data();
        Bit2Conv2dRef(p, planes.data(), pad.data(), w.data(), u_zero, o, 0, rows);
        ASSERT_EQ(got, want) << GetParam().name << " in_c " << in_c << " trial " << trial
                             << " kind " << static_cast<int>(kind);
        // The same layer through the integer kernel's twin: the two formulations agree exactly.
        std::vector<uint8_t> qx(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.groups *
                                Int8Channels(p.in_c / p.groups));
        QuantizeU8Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, p.in_c, p.groups, q,
                      x.data(), qx.data());
        std::vector<uint8_t> pad8(static_cast<size_t>(p.groups) * Int8Channels(p.in_c / p.groups),
                                  QuantizeOneU8(q, p.pad_value));
        o.data = via_int8.data();
        Int8Conv2dRef(p, qx.data(), pad8.data(), w.data(), q.input_zero(), o, 0, rows);
        ASSERT_EQ(via_int8, want) << "in_c " << in_c << " trial " << trial;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

TEST_P(PerTarget, Bit2LutCodesMatchRef) {
  std::mt19937 rng(29);
  for (int channels : {1, 2, 3, 17, 63, 64, 65, 128, 191, 192, 193, 200, 400}) {
    for (int groups : {1, 2}) {
      if (channels % groups != 0) continue;
      const int64_t pixels = 5;
      const int cg = channels / groups;
      const ActivationQuant q = Random2BitQuant(rng);
      auto x = Random(pixels * channels, rng);
      for (float& v : x) v *= 2.f;
      std::vector<uint64_t> planes(pixels * groups * PackedWords(cg) * 2);
      QuantizeBitplanes2Ref(pixels, channels, groups, q, x.data(), planes.data());
      const size_t n = pixels * groups * Bit2Triples(cg);
      // One spare code past the end: the conversion must not write it.
      std::vector<uint16_t> got(n + 1, 0xFFFF), want(n + 1, 0xFFFF);
      Bit2LutCodes(pixels, channels, groups, planes.data(), got.data());
      Bit2LutCodesRef(pixels, channels, groups, planes.data(), want.data());
      EXPECT_EQ(got, want) << "channels " << channels << " groups " << groups;
    }
  }
}

// The lookup kernel against the bit-serial kernel's twin on random layers, with output channels
// past one block of 64 and long reductions that make the 16-bit sums spill to 32 bits.
TEST_P(PerTarget, Bit2LutConvMatchesRefBitForBit) {
  std::mt19937 rng(31);
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int checked = 0;
  for (int in_c : {1, 3, 17, 63, 64, 65, 200, 700}) {
    for (int trial = 0; trial < 8; ++trial) {
      Case c = RandomCase(rng, in_c);
      Conv2dParams& p = c.p;
      if (p.out_h <= 0 || p.out_w <= 0) continue;
      if (trial % 2 == 1) p.out_c = p.groups * u(60, 150);
      if (in_c == 700) {  // 9 x 234 lookups: past one spill to 32 bits; a small image
        p.kernel_h = p.kernel_w = 3;
        p.batch = 1;
        p.in_h = u(3, 5);
        p.in_w = u(3, 6);
      }
      const int span_h = (p.kernel_h - 1) * p.dilation_h + 1;
      const int span_w = (p.kernel_w - 1) * p.dilation_w + 1;
      p.out_h = (p.in_h + 2 * p.pad_top - span_h) / p.stride_h + 1;
      p.out_w = (p.in_w + 2 * p.pad_left - span_w) / p.stride_w + 1;
      if (p.in_h + 2 * p.pad_top < span_h || p.in_w + 2 * p.pad_left < span_w) continue;
      p.pad_value = trial % 3 == 0 ? 0.5f : 0.f;
      ASSERT_TRUE(Bit2LutConvSupported(p));
      ActivationQuant q = Random2BitQuant(rng);
      const int taps = p.kernel_h * p.kernel_w;
      const int cg = p.in_c / p.groups;
      auto x = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
      // Some layers at the extremes: every activation 3 and every weight +1 (or -1) gives the
      // largest byte sums.
      const int extreme = trial == 0 ? 1 : trial == 4 ? -1 : 0;
      for (float& v : x) v = extreme != 0 ? 100.f : 2.f * v;
      std::vector<int8_t> w(static_cast<size_t>(p.out_c) * taps * cg);
      for (int8_t& v : w) {
        v = static_cast<int8_t>(extreme != 0 ? extreme : static_cast<int>(rng() % 3) - 1);
      }
      const int64_t in_pixels = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
      const int words = PackedWords(cg);
      std::vector<uint64_t> planes(in_pixels * p.groups * words * 2);
      QuantizeBitplanes2Ref(in_pixels, p.in_c, p.groups, q, x.data(), planes.data());
      std::vector<uint64_t> pad(static_cast<size_t>(p.groups) * words * 2);
      Bit2PadPixel(p, q, pad.data());
      const int triples = Bit2Triples(cg);
      std::vector<uint16_t> codes(in_pixels * p.groups * triples);
      Bit2LutCodes(in_pixels, p.in_c, p.groups, planes.data(), codes.data());
      std::vector<uint16_t> pad_codes(static_cast<size_t>(p.groups) * triples);
      Bit2LutCodes(1, p.in_c, p.groups, pad.data(), pad_codes.data());
      std::vector<uint8_t> packed(Bit2LutPackedWeightsBytes(p));
      PackBit2LutWeights(p, w.data(), packed.data());
      std::vector<int32_t> zero(p.out_c);
      Int8ConvWeightSums(p, w.data(), zero.data());
      const int u_zero = q.zero_point - q.qmin;
      for (int32_t& z : zero) z *= u_zero;
      std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
      ConvIndirection(p, static_cast<int64_t>(p.groups) * triples, offsets.data());
      const int rows = p.batch * p.out_h;
      for (OutputKind kind :
           {OutputKind::kFloat, OutputKind::kBits, OutputKind::kU8, OutputKind::kPlanes2}) {
        RandomOutput out(kind, p.out_c, p.groups, 3 * taps * cg, rng);
        ASSERT_TRUE(out.ok());
        const size_t bytes = static_cast<size_t>(rows) * p.out_w * OutputPixelBytes(out.o, p.out_c);
        std::vector<unsigned char> got(bytes, 0), want(bytes, 0);
        ConvOutput o = out.o;
        o.data = got.data();
        Bit2LutConv2d(p, codes.data(), pad_codes.data(), packed.data(), zero.data(), offsets.data(),
                      o, 0, rows / 2);
        Bit2LutConv2d(p, codes.data(), pad_codes.data(), packed.data(), zero.data(), offsets.data(),
                      o, rows / 2, rows);
        o.data = want.data();
        Bit2Conv2dRef(p, planes.data(), pad.data(), w.data(), u_zero, o, 0, rows);
        ASSERT_EQ(got, want) << GetParam().name << " in_c " << in_c << " out_c " << p.out_c
                             << " trial " << trial << " kind " << static_cast<int>(kind);
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

INSTANTIATE_TEST_SUITE_P(Targets, PerTarget, ::testing::ValuesIn(SupportedTargets()),
                         [](const auto& param_info) { return param_info.param.name; });

// The per-target tests only cover what SupportedTargets lists; it must list every target this CPU
// can run (a Highway header included before the configuration once dropped AVX3_DL silently).
TEST(Dispatch, ListsEveryTargetThisCpuRuns) {
  std::vector<std::string> names;
  for (const Target& t : SupportedTargets()) names.push_back(t.name);
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_TRUE(has("avx2"));
  }
  if (__builtin_cpu_supports("avx512bw")) {
    EXPECT_TRUE(has("avx3"));
  }
  if (__builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512vnni")) {
    EXPECT_TRUE(has("avx3_dl"));
  }
#endif
#if defined(__x86_64__) && defined(__linux__)
  // Linux lists amx_tile and amx_int8 where both CPU and kernel support AMX, which the process
  // must then be granted (AmxUsable).
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("flags", 0) != 0) {
  }
  if (line.find(" amx_tile") != std::string::npos && line.find(" amx_int8") != std::string::npos &&
      has("avx3_dl")) {
    EXPECT_TRUE(has("avx3_amx"));
  }
#endif
  EXPECT_EQ(has("avx3_amx"), AmxUsable() && has("avx3_dl"));
  EXPECT_FALSE(names.empty());
}

TEST(BinaryConv2dRef, EqualsFloatConvolutionOfSigns) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    Case c = RandomCase(rng, std::vector<int>{1, 5, 64, 70}[trial % 4]);
    const Conv2dParams& p = c.p;
    if (p.out_h <= 0 || p.out_w <= 0) continue;
    const int taps = p.kernel_h * p.kernel_w;
    auto x = Random(static_cast<size_t>(p.batch) * p.in_h * p.in_w * p.in_c, rng);
    auto w = Random(static_cast<size_t>(p.out_c) * taps * (p.in_c / p.groups), rng);
    auto mul = Random(p.out_c, rng);
    std::vector<float> sx(x.size()), sw(w.size());
    SignF32Ref(static_cast<int64_t>(x.size()), x.data(), sx.data());
    SignF32Ref(static_cast<int64_t>(w.size()), w.data(), sw.data());
    std::vector<uint64_t> packed_x(x.size() * 2);
    BitpackF32Ref(static_cast<int64_t>(p.batch) * p.in_h * p.in_w, p.in_c, p.groups, nullptr,
                  nullptr, x.data(), packed_x.data());
    const size_t n = static_cast<size_t>(p.batch) * p.out_h * p.out_w * p.out_c;
    std::vector<float> dots(n), want(n), got(n);
    Conv2dF32Ref(p, sx.data(), sw.data(), nullptr, dots.data(), 0, p.batch * p.out_h);
    for (size_t i = 0; i < n; ++i) want[i] = dots[i] * mul[i % p.out_c];
    ConvOutput o;
    o.transform.mul = mul.data();
    o.data = got.data();
    BinaryConv2dRef(p, packed_x.data(), w.data(), o, 0, p.batch * p.out_h);
    ASSERT_EQ(got, want) << "trial " << trial;
  }
}

}  // namespace
}  // namespace hybrid::kernels
