// Binary kernels, compiled once per SIMD target by Highway and dispatched at run time.
//
// The convolution is a GEMM over packed words driven by an indirection buffer: for a tile of MR
// output pixels and a block of 16 output channels it streams the taps, broadcasts each input word
// and XORs it with the 16 channels' weight words, accumulating popcounts in 64-bit lanes. On
// AVX3_DL the popcount is VPOPCNTQ; elsewhere it is the nibble-lookup popcount of bytes summed
// per 64-bit lane (PopulationCount on u8, then SumsOf8).
#include "kernels/binary.h"

#include <cstring>

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/binary.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DU64 = hn::ScalableTag<uint64_t>;
using VU64 = hn::Vec<DU64>;

// Words of +1 signs that padded taps read under one-padding (and that zero-padding corrects).
alignas(64) const uint64_t kZeroWords[kMaxBinaryWords] = {};

HWY_INLINE VU64 PopCount64([[maybe_unused]] DU64 d, VU64 v) {
#if HWY_TARGET == HWY_AVX3_DL
  return hn::PopulationCount(v);
#elif HWY_TARGET == HWY_SCALAR
  return hn::Set(d, static_cast<uint64_t>(__builtin_popcountll(hn::GetLane(v))));
#else
  const hn::Repartition<uint8_t, DU64> d8;
  return hn::SumsOf8(hn::PopulationCount(hn::BitCast(d8, v)));
#endif
}

void BitpackF32Impl(int64_t pixels, int channels, int groups, const float* thresholds,
                    const float* in, uint64_t* out) {
  const hn::ScalableTag<float> df;
  const size_t n = hn::Lanes(df);
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  for (int64_t px = 0; px < pixels; ++px) {
    const float* x = in + px * channels;
    for (int g = 0; g < groups; ++g) {
      for (int w = 0; w < words; ++w) {
        const int c0 = g * cg + w * 64;
        const int count = std::min(64, cg - w * 64);
        uint64_t word = 0;
        int c = 0;
        if (n <= 64) {
          for (; c + static_cast<int>(n) <= count; c += static_cast<int>(n)) {
            const auto v = hn::LoadU(df, x + c0 + c);
            const auto t =
                thresholds != nullptr ? hn::LoadU(df, thresholds + c0 + c) : hn::Zero(df);
            uint8_t bytes[8] = {};
            hn::StoreMaskBits(df, hn::Lt(v, t), bytes);
            uint64_t bits = 0;
            std::memcpy(&bits, bytes, sizeof(bits));
            if (n < 64) bits &= (uint64_t{1} << n) - 1;
            word |= bits << c;
          }
        }
        for (; c < count; ++c) {
          const float t = thresholds != nullptr ? thresholds[c0 + c] : 0.f;
          word |= static_cast<uint64_t>(x[c0 + c] < t) << c;
        }
        *out++ = word;
      }
    }
  }
}

// Popcounts of (input XOR weights) for MR pixels and one block of 16 output channels.
template <int MR>
HWY_INLINE void Tile(const uint64_t* const* src_taps, int taps, int words, const uint64_t* block,
                     uint64_t (*counts)[kBinaryOcBlock]) {
  const DU64 d;
  constexpr int kLanes = static_cast<int>(HWY_LANES(uint64_t)) < kBinaryOcBlock
                             ? static_cast<int>(HWY_LANES(uint64_t))
                             : kBinaryOcBlock;
  constexpr int kVecs = kBinaryOcBlock / kLanes;
  const int lanes = static_cast<int>(hn::Lanes(d));
  if (lanes != kLanes) {
    // A scalable or capped vector that does not match at compile time: one lane at a time.
    for (int m = 0; m < MR; ++m) {
      for (int j = 0; j < kBinaryOcBlock; ++j) {
        uint64_t sum = 0;
        for (int t = 0; t < taps; ++t) {
          const uint64_t* src = src_taps[m * taps + t];
          for (int w = 0; w < words; ++w) {
            sum += static_cast<uint64_t>(
                __builtin_popcountll(src[w] ^ block[(t * words + w) * kBinaryOcBlock + j]));
          }
        }
        counts[m][j] = sum;
      }
    }
    return;
  }
  VU64 acc[MR][kVecs];
  for (int m = 0; m < MR; ++m) {
    for (int j = 0; j < kVecs; ++j) acc[m][j] = hn::Zero(d);
  }
  for (int t = 0; t < taps; ++t) {
    const uint64_t* src[MR];
    for (int m = 0; m < MR; ++m) src[m] = src_taps[m * taps + t];
    for (int w = 0; w < words; ++w) {
      const uint64_t* wp = block + (t * words + w) * kBinaryOcBlock;
      VU64 wv[kVecs];
      for (int j = 0; j < kVecs; ++j) wv[j] = hn::LoadU(d, wp + j * kLanes);
      for (int m = 0; m < MR; ++m) {
        const VU64 x = hn::Set(d, src[m][w]);
        for (int j = 0; j < kVecs; ++j) {
          acc[m][j] = hn::Add(acc[m][j], PopCount64(d, hn::Xor(x, wv[j])));
        }
      }
    }
  }
  for (int m = 0; m < MR; ++m) {
    for (int j = 0; j < kVecs; ++j) hn::StoreU(acc[m][j], d, counts[m] + j * kLanes);
  }
}

// Pixels per tile: enough independent accumulators to hide the popcount-add latency.
constexpr int kTilePixels = HWY_LANES(uint64_t) >= 8 ? 4 : 2;

void BinaryConv2dImpl(const Conv2dParams& p, const uint64_t* in, const uint64_t* packed,
                      const int32_t* tap_sums, const int64_t* offsets, const BinaryOutput& o,
                      float* out, int row_begin, int row_end) {
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int words = PackedWords(cg);
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock;
  const int64_t image_words = static_cast<int64_t>(p.in_h) * p.in_w * p.groups * words;
  const int32_t k_total = taps * cg;
  const bool zero_padding = p.pad_value == 0.f;
  HWY_ALIGN uint64_t counts[kTilePixels][kBinaryOcBlock];
  const uint64_t* src_taps[kTilePixels * kMaxBinaryTaps];
  for (int row = row_begin; row < row_end; ++row) {
    const int b = row / p.out_h;
    const int oy = row % p.out_h;
    const uint64_t* image = in + b * image_words;
    for (int g = 0; g < p.groups; ++g) {
      for (int blk = 0; blk < blocks; ++blk) {
        const uint64_t* block =
            packed + (static_cast<int64_t>(g) * blocks + blk) * taps * words * kBinaryOcBlock;
        const int oc0 = blk * kBinaryOcBlock;
        const int oc_count = std::min(kBinaryOcBlock, out_cg - oc0);
        for (int ox = 0; ox < p.out_w;) {
          const int mr = p.out_w - ox >= kTilePixels ? kTilePixels : 1;
          const int64_t* offs = offsets + (static_cast<int64_t>(oy) * p.out_w + ox) * taps;
          for (int m = 0; m < mr; ++m) {
            for (int t = 0; t < taps; ++t) {
              const int64_t off = offs[m * taps + t];
              src_taps[m * taps + t] = off >= 0 ? image + off + g * words : kZeroWords;
            }
          }
          if (mr == kTilePixels) {
            Tile<kTilePixels>(src_taps, taps, words, block, counts);
          } else {
            Tile<1>(src_taps, taps, words, block, counts);
          }
          for (int m = 0; m < mr; ++m) {
            float* y =
                out + ((static_cast<int64_t>(row) * p.out_w + ox + m) * p.out_c) + g * out_cg + oc0;
            for (int j = 0; j < oc_count; ++j) {
              int32_t dot = k_total - 2 * static_cast<int32_t>(counts[m][j]);
              if (zero_padding) {
                const int32_t* sums = tap_sums + static_cast<int64_t>(g * out_cg + oc0 + j) * taps;
                for (int t = 0; t < taps; ++t) {
                  if (offs[m * taps + t] < 0) dot -= sums[t];
                }
              }
              const int c = g * out_cg + oc0 + j;
              float v = static_cast<float>(dot) * o.mul[c];
              if (o.bias != nullptr) v = v + o.bias[c];
              y[j] = o.relu && v < 0.f ? 0.f : v;
            }
          }
          ox += mr;
        }
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hybrid::kernels {

HWY_EXPORT(BitpackF32Impl);
HWY_EXPORT(BinaryConv2dImpl);

void BitpackF32(int64_t pixels, int channels, int groups, const float* thresholds, const float* in,
                uint64_t* out) {
  HWY_DYNAMIC_DISPATCH(BitpackF32Impl)(pixels, channels, groups, thresholds, in, out);
}

void BinaryConv2d(const Conv2dParams& p, const uint64_t* in, const uint64_t* packed,
                  const int32_t* tap_sums, const int64_t* offsets, const BinaryOutput& o,
                  float* out, int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(BinaryConv2dImpl)
  (p, in, packed, tap_sums, offsets, o, out, row_begin, row_end);
}

}  // namespace hybrid::kernels
#endif  // HWY_ONCE
