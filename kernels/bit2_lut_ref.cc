// The lookup table, plan-time weight packing and the reference code conversion of the 2-bit
// lookup kernel, in plain C++.
#include <algorithm>
#include <array>
#include <cstring>

#include "kernels/binary.h"
#include "kernels/bit2_lut.h"

namespace hybrid::kernels {

namespace {

constexpr std::array<uint8_t, 64 * 64> MakeTable() {
  std::array<uint8_t, 64 * 64> t{};
  for (int code = 0; code < 64; ++code) {
    int u[3] = {};
    for (int j = 0; j < 3; ++j) u[j] = ((code >> j) & 1) + 2 * ((code >> (3 + j)) & 1);
    for (int pattern = 0; pattern < 64; ++pattern) {
      int sum = 0;
      if (pattern < 27) {
        for (int j = 0, rest = pattern; j < 3; ++j, rest /= 3) sum += u[j] * (rest % 3 - 1);
      }
      t[code * 64 + pattern] = static_cast<uint8_t>(9 + sum);
    }
  }
  return t;
}

}  // namespace

alignas(64) constexpr std::array<uint8_t, 64 * 64> kBit2LutTable = MakeTable();

void Bit2LutCodesRef(int64_t pixels, int channels, int groups, const uint64_t* planes,
                     uint16_t* codes) {
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  const int triples = Bit2Triples(cg);
  for (int64_t px = 0; px < pixels * groups; ++px) {
    const uint64_t* w = planes + px * words * 2;
    for (int i = 0; i < triples; ++i) {
      int code = 0;
      for (int j = 0; j < 3; ++j) {
        const int c = 3 * i + j;
        if (c >= cg) break;
        code |= static_cast<int>((w[(c / 64) * 2] >> (c % 64)) & 1) << j;
        code |= static_cast<int>((w[(c / 64) * 2 + 1] >> (c % 64)) & 1) << (3 + j);
      }
      *codes++ = static_cast<uint16_t>(code * 64);
    }
  }
}

size_t Bit2LutPackedWeightsBytes(const Conv2dParams& p) {
  const int out_cg = p.out_c / p.groups;
  const size_t blocks = static_cast<size_t>((out_cg + kBit2LutOcBlock - 1) / kBit2LutOcBlock);
  return static_cast<size_t>(p.groups) * blocks * p.kernel_h * p.kernel_w *
         Bit2Triples(p.in_c / p.groups) * kBit2LutOcBlock;
}

void PackBit2LutWeights(const Conv2dParams& p, const int8_t* weights, uint8_t* packed) {
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int triples = Bit2Triples(cg);
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBit2LutOcBlock - 1) / kBit2LutOcBlock;
  constexpr uint8_t kZeroPattern = 1 + 3 * 1 + 9 * 1;  // three zero weights
  std::memset(packed, kZeroPattern, Bit2LutPackedWeightsBytes(p));
  for (int oc = 0; oc < p.out_c; ++oc) {
    const int g = oc / out_cg, local = oc % out_cg;
    const int blk = local / kBit2LutOcBlock, lane = local % kBit2LutOcBlock;
    uint8_t* block =
        packed + (static_cast<int64_t>(g) * blocks + blk) * taps * triples * kBit2LutOcBlock;
    for (int t = 0; t < taps; ++t) {
      const int8_t* w = weights + (static_cast<int64_t>(oc) * taps + t) * cg;
      for (int i = 0; i < triples; ++i) {
        int pattern = 0;
        for (int j = 2; j >= 0; --j) {
          const int c = 3 * i + j;
          pattern = pattern * 3 + (c < cg ? std::clamp<int>(w[c], -1, 1) + 1 : 1);
        }
        block[(t * triples + i) * kBit2LutOcBlock + lane] = static_cast<uint8_t>(pattern);
      }
    }
  }
}

bool Bit2LutConvSupported(const Conv2dParams& p) { return BinaryConvSupported(p); }

}  // namespace hybrid::kernels
