// Binary kernels, compiled once per SIMD target by Highway and dispatched at run time.
//
// The convolution is a GEMM over packed words driven by an indirection buffer: for a tile of MR
// output pixels and a block of 16 output channels it streams the taps, broadcasts each input word
// and XORs it with the 16 channels' weight words, accumulating popcounts in 64-bit lanes. On
// AVX3_DL the popcount is VPOPCNTQ; on AVX2 a lookup per nibble of the input and the weights,
// which are packed as nibbles, counted in bytes (ByteCountedTaps); elsewhere the nibble-lookup
// popcount of bytes summed per 64-bit lane (PopulationCount on u8, then SumsOf8).
// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <algorithm>
#include <cstring>

#include "kernels/binary.h"
#include "kernels/int8.h"
#include "kernels/interior.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/binary.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/output-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DU64 = hn::ScalableTag<uint64_t>;
using VU64 = hn::Vec<DU64>;

// Words of +1 signs that padded taps read under one-padding (and that zero-padding corrects).
alignas(64) const uint64_t kZeroWords[kMaxBinaryWords] = {};

// On AVX2 the binary weights are packed as nibbles (BinaryWeightsAsNibbles): XORed with the input
// word's nibbles, split once per word for all 16 channels, they index VPSHUFB's popcount table as
// they are, which saves the two masks and the shift of every lookup (8 vector operations per word
// and 4 channels become 6; Zen 2, 3x3 layers 9-17% faster).
constexpr bool kNibbleWeights = HWY_TARGET == HWY_AVX2;

bool BinaryWeightsAsNibblesImpl() { return kNibbleWeights; }

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

void BitpackF32Impl(int64_t pixels, int channels, int groups, const float* below,
                    const float* above, const float* in, uint64_t* out) {
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
            const auto negative = below != nullptr
                                      ? hn::Or(hn::Lt(v, hn::LoadU(df, below + c0 + c)),
                                               hn::Gt(v, hn::LoadU(df, above + c0 + c)))
                                      : hn::Lt(v, hn::Zero(df));
            uint8_t bytes[8] = {};
            hn::StoreMaskBits(df, negative, bytes);
            uint64_t bits = 0;
            std::memcpy(&bits, bytes, sizeof(bits));
            if (n < 64) bits &= (uint64_t{1} << n) - 1;
            word |= bits << c;
          }
        }
        for (; c < count; ++c) {
          const float v = x[c0 + c];
          const bool negative = below != nullptr ? v < below[c0 + c] || v > above[c0 + c] : v < 0.f;
          word |= static_cast<uint64_t>(negative) << c;
        }
        *out++ = word;
      }
    }
  }
}

// Where one tile's results go: MR output pixels of one block of 16 channels.
struct TileOutput {
  int32_t k_total;  // taps * channels per group: the dot product of all-agreeing signs
  BlockOutput block;
  // With bits output, binary, and no correction in the tile: bit = count > count_threshold[j],
  // the threshold moved onto the popcounts so that the bits come straight from the accumulators.
  const int64_t* count_threshold;
  const int32_t* zero;         // 16 values to subtract from every pixel's sum (2-bit), or null
  const int32_t* const* corr;  // per pixel: 16 values to subtract (zero-padded taps), or null
  unsigned char* const* px;    // per pixel: the first byte of its output

  HWY_INLINE unsigned char* Dst(int m) const { return px[m] + block.offset; }
};

// Pixel m's sums from its counts, less the zero point and padding corrections, then its output.
// Binary (one plane) counts disagreeing signs, so the sum is k_total - 2 * count; 2-bit (two
// planes) accumulates the signed sum itself.
template <int kPlanes>
HWY_INLINE void StoreCounts(const int32_t* counts, int m, const TileOutput& o) {
  // Vectors of at most 16 lanes, a power of two: a whole number of them per block.
  const hn::CappedTag<int32_t, kBinaryOcBlock> di;
  const int n = static_cast<int>(hn::Lanes(di));
  HWY_ALIGN int32_t dot[kBinaryOcBlock];
  const auto k_total = hn::Set(di, o.k_total);
  for (int j = 0; j < kBinaryOcBlock; j += n) {
    const auto count = hn::Load(di, counts + j);
    auto v = kPlanes == 1 ? hn::Sub(k_total, hn::Add(count, count)) : count;
    if (o.zero != nullptr) v = hn::Sub(v, hn::LoadU(di, o.zero + j));
    if (o.corr[m] != nullptr) v = hn::Sub(v, hn::LoadU(di, o.corr[m] + j));
    hn::Store(v, di, dot + j);
  }
  StoreBlock(di, dot, o.block, o.Dst(m));
}

// Popcounts of (input XOR weights) for MR pixels and one block of 16 output channels, then the
// output transform straight from the accumulators.
// Where pixel m of a tile reads tap t: from a gathered pointer per pixel and tap (tiles that touch
// the padding), or from one pointer per tap plus m times a pixel step (interior tiles).
struct GatheredSrc {
  const uint64_t* const* ptrs;
  int taps;
  HWY_INLINE const uint64_t* At(int m, int t) const { return ptrs[m * taps + t]; }
};
struct StridedSrc {
  const uint64_t* const* tap_base;
  int64_t step;
  HWY_INLINE const uint64_t* At(int m, int t) const { return tap_base[t] + m * step; }
};

// AVX2's binary counts, on nibble weights (kNibbleWeights). A popcount is a VPSHUFB lookup per
// nibble, counts of bytes; those of up to 31 words (at most 8 each, 248 in all) add up in bytes
// and are summed into 64-bit lanes once per run: 6 operations per word and vector of channels,
// and 3 per input word for its nibbles. Sets `acc` to the binary counts of Tile's loop. (D is a
// parameter so that targets without byte vectors never instantiate it.)
template <int MR, int kWords, int kVecs, class D, class Src>
HWY_INLINE void ByteCountedTaps(D d, const Src& src_taps, int taps, int words,
                                const uint64_t* block, hn::Vec<D> (&acc)[MR][kVecs]) {
  constexpr int kLanes = kBinaryOcBlock / kVecs;
  constexpr int kRow = 2 * kBinaryOcBlock;  // weight words per input word: low, high nibbles
  const hn::Repartition<uint8_t, D> d8;
  using V = hn::Vec<D>;
  using VU8 = hn::Vec<decltype(d8)>;
  // Popcounts of 0..15, one 16-byte table that VPSHUFB reads in each 128-bit block.
  alignas(16) static constexpr uint8_t kNibblePopCount[16] = {0, 1, 1, 2, 1, 2, 2, 3,
                                                              1, 2, 2, 3, 2, 3, 3, 4};
  const VU8 table = hn::LoadDup128(d8, kNibblePopCount);
  const V low_nibbles = hn::Set(d, 0x0F0F0F0F0F0F0F0FULL);
  // Byte counts of the words of pixel x against the channels of vector j of a weight row.
  const auto count = [&](V x_low, V x_high, const uint64_t* row, int j) HWY_ATTR {
    const V low = hn::Xor(x_low, hn::LoadU(d, row + j * kLanes));
    const V high = hn::Xor(x_high, hn::LoadU(d, row + kBinaryOcBlock + j * kLanes));
    return hn::Add(hn::TableLookupBytes(table, hn::BitCast(d8, low)),
                   hn::TableLookupBytes(table, hn::BitCast(d8, high)));
  };
  constexpr int kByteRun = 31;
  // Short reductions (1x1 layers, 3x3 of 64 channels): every pixel's counts at once, one run, each
  // weight vector loaded once for the tile. Measured on Zen 2 against one pixel at a time: 4 and 9
  // words 5-10% faster, 18 words 14% slower.
  constexpr int kShortReduction = 12;
  if (taps * words <= kShortReduction) {
    VU8 bytes[MR][kVecs];
    for (int m = 0; m < MR; ++m) {
      for (int j = 0; j < kVecs; ++j) bytes[m][j] = hn::Zero(d8);
    }
    for (int t = 0; t < taps; ++t) {
      const uint64_t* src[MR];
      for (int m = 0; m < MR; ++m) src[m] = src_taps.At(m, t);
      const uint64_t* row = block + t * words * kRow;
#pragma GCC unroll 1
      for (int w = 0; w < words; ++w, row += kRow) {
        V x_low[MR], x_high[MR];
        for (int m = 0; m < MR; ++m) {
          const V x = hn::Set(d, src[m][w]);
          x_low[m] = hn::And(x, low_nibbles);
          x_high[m] = hn::And(hn::ShiftRight<4>(x), low_nibbles);
        }
        for (int j = 0; j < kVecs; ++j) {
          for (int m = 0; m < MR; ++m) {
            bytes[m][j] = hn::Add(bytes[m][j], count(x_low[m], x_high[m], row, j));
          }
        }
      }
    }
    for (int m = 0; m < MR; ++m) {
      for (int j = 0; j < kVecs; ++j) acc[m][j] = hn::SumsOf8(bytes[m][j]);
    }
    return;
  }
  const int run_taps = words <= kByteRun ? kByteRun / words : 1;
  // One pixel at a time: its kVecs byte counts and acc stay in registers (AVX2 has 16), and
  // kVecs independent chains hide the adds' latency; the weights come from L1.
#pragma GCC unroll 1
  for (int m = 0; m < MR; ++m) {
    VU8 bytes[kVecs];
    V sums[kVecs];
    for (int j = 0; j < kVecs; ++j) {
      bytes[j] = hn::Zero(d8);
      sums[j] = hn::Zero(d);
    }
    const auto flush = [&]() HWY_ATTR {
      for (int j = 0; j < kVecs; ++j) {
        sums[j] = hn::Add(sums[j], hn::SumsOf8(bytes[j]));
        bytes[j] = hn::Zero(d8);
      }
    };
    for (int t0 = 0; t0 < taps; t0 += run_taps) {
      const int t_end = std::min(taps, t0 + run_taps);
      int filled = 0;  // words in the byte counts, when a tap alone may hold more than a run
      for (int t = t0; t < t_end; ++t) {
        const uint64_t* src = src_taps.At(m, t);
        const uint64_t* row = block + t * words * kRow;
        // Unrolled, GCC hoists the words' loads and spills byte counts (at 4 words, 12% slower).
#pragma GCC unroll 1
        for (int w = 0; w < words; ++w, row += kRow) {
          const V x = hn::Set(d, src[w]);
          const V x_low = hn::And(x, low_nibbles);
          const V x_high = hn::And(hn::ShiftRight<4>(x), low_nibbles);
          for (int j = 0; j < kVecs; ++j)
            bytes[j] = hn::Add(bytes[j], count(x_low, x_high, row, j));
          if constexpr (kWords == 0 || kWords > kByteRun) {
            if (++filled == kByteRun) {
              flush();
              filled = 0;
            }
          }
        }
      }
      flush();
    }
    for (int j = 0; j < kVecs; ++j) acc[m][j] = sums[j];
  }
}

// kWords > 0 fixes the words per tap at compile time so that the common channel counts (64, 128,
// 256, 512) get a fully unrolled inner loop; 0 reads `words` at run time.
//
// kPlanes 1 (binary): one word of sign bits per 64 channels, counted as popcount(x XOR w).
// kPlanes 2 (2-bit): two activation bit planes (value = b0 + 2 b1) against the planes of weights
// +1 and -1, accumulating popcount(b & pos) - popcount(b & neg), the second plane doubled.
template <int MR, int kWords, int kPlanes, bool kBytes, class Src>
HWY_INLINE void Tile(const Src& src_taps, int taps, int runtime_words, const uint64_t* block,
                     const TileOutput& out) {
  const int words = kWords > 0 ? kWords : runtime_words;
  const DU64 d;
  constexpr int kLanes = static_cast<int>(HWY_LANES(uint64_t)) < kBinaryOcBlock
                             ? static_cast<int>(HWY_LANES(uint64_t))
                             : kBinaryOcBlock;
  constexpr int kVecs = kBinaryOcBlock / kLanes;
  if (static_cast<int>(hn::Lanes(d)) != kLanes) {
    // A scalable vector whose size is unknown at compile time: one channel at a time.
    for (int m = 0; m < MR; ++m) {
      int32_t counts[kBinaryOcBlock];
      for (int j = 0; j < kBinaryOcBlock; ++j) {
        uint64_t sum = 0;
        for (int t = 0; t < taps; ++t) {
          const uint64_t* src = src_taps.At(m, t);
          for (int w = 0; w < words; ++w) {
            const uint64_t* wp = block + ((t * words + w) * kPlanes) * kBinaryOcBlock + j;
            if (kPlanes == 1) {
              sum += static_cast<uint64_t>(__builtin_popcountll(src[w] ^ wp[0]));
            } else {
              for (int b = 0; b < 2; ++b) {
                const uint64_t x = src[w * 2 + b];
                const int64_t v =
                    __builtin_popcountll(x & wp[0]) - __builtin_popcountll(x & wp[kBinaryOcBlock]);
                sum += static_cast<uint64_t>(v << b);
              }
            }
          }
        }
        counts[j] = static_cast<int32_t>(sum);
      }
      StoreCounts<kPlanes>(counts, m, out);
    }
    return;
  }
  VU64 acc[MR][kVecs];
  for (int m = 0; m < MR; ++m) {
    for (int j = 0; j < kVecs; ++j) acc[m][j] = hn::Zero(d);
  }
  if constexpr (kBytes) {
    ByteCountedTaps<MR, kWords, kVecs>(d, src_taps, taps, words, block, acc);
  } else {
    for (int t = 0; t < taps; ++t) {
      const uint64_t* src[MR];
      for (int m = 0; m < MR; ++m) src[m] = src_taps.At(m, t);
      for (int w = 0; w < words; ++w) {
        const uint64_t* wp = block + (t * words + w) * kPlanes * kBinaryOcBlock;
        if constexpr (kPlanes == 1) {
          VU64 wv[kVecs];
          for (int j = 0; j < kVecs; ++j) wv[j] = hn::LoadU(d, wp + j * kLanes);
          for (int m = 0; m < MR; ++m) {
            const VU64 x = hn::Set(d, src[m][w]);
            for (int j = 0; j < kVecs; ++j) {
              acc[m][j] = hn::Add(acc[m][j], PopCount64(d, hn::Xor(x, wv[j])));
            }
          }
        } else {
          VU64 pos[kVecs], neg[kVecs];
          for (int j = 0; j < kVecs; ++j) {
            pos[j] = hn::LoadU(d, wp + j * kLanes);
            neg[j] = hn::LoadU(d, wp + kBinaryOcBlock + j * kLanes);
          }
          for (int m = 0; m < MR; ++m) {
            const VU64 x0 = hn::Set(d, src[m][2 * w]);
            const VU64 x1 = hn::Set(d, src[m][2 * w + 1]);
            for (int j = 0; j < kVecs; ++j) {
              // Lanes may wrap below zero; the final sum fits in 32 bits and is read as signed.
              const VU64 low =
                  hn::Sub(PopCount64(d, hn::And(x0, pos[j])), PopCount64(d, hn::And(x0, neg[j])));
              const VU64 high =
                  hn::Sub(PopCount64(d, hn::And(x1, pos[j])), PopCount64(d, hn::And(x1, neg[j])));
              acc[m][j] = hn::Add(acc[m][j], hn::Add(low, hn::Add(high, high)));
            }
          }
        }
      }
    }
  }
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if constexpr (kVecs == 2) {
    // Two compares into mask registers, joined and stored as the 16 bits: half the operations
    // of going through StoreMaskBits, which shows on short reductions (1x1 layers).
    if (out.count_threshold != nullptr) {
      const __m512i lo_threshold = _mm512_loadu_si512(out.count_threshold);
      const __m512i hi_threshold = _mm512_loadu_si512(out.count_threshold + kLanes);
      for (int m = 0; m < MR; ++m) {
        const __mmask8 lo = _mm512_cmpgt_epi64_mask(acc[m][0].raw, lo_threshold);
        const __mmask8 hi = _mm512_cmpgt_epi64_mask(acc[m][1].raw, hi_threshold);
        StoreBits16(_cvtmask16_u32(_mm512_kunpackb(hi, lo)), out.Dst(m));
      }
      return;
    }
  }
#endif
#if HWY_TARGET != HWY_SCALAR
  if (out.count_threshold != nullptr) {
    const hn::Repartition<int64_t, DU64> ds;
    for (int m = 0; m < MR; ++m) {
      uint64_t bits = 0;
      for (int j = 0; j < kVecs; ++j) {
        const auto over =
            hn::Gt(hn::BitCast(ds, acc[m][j]), hn::LoadU(ds, out.count_threshold + j * kLanes));
        uint8_t bytes[8] = {};
        hn::StoreMaskBits(ds, over, bytes);
        bits |= static_cast<uint64_t>(bytes[0] & ((1u << kLanes) - 1)) << (j * kLanes);
      }
      StoreBits16(bits, out.Dst(m));
    }
    return;
  }
#endif
  // The counts leave the registers once, through loops the compiler unrolls, so that the
  // output's loops may index them without keeping the accumulators in memory meanwhile.
  // Counts fit in 32 bits.
  HWY_ALIGN int32_t counts[MR][kBinaryOcBlock];
#if HWY_TARGET == HWY_SCALAR
  for (int m = 0; m < MR; ++m) {
    for (int j = 0; j < kVecs; ++j) counts[m][j] = static_cast<int32_t>(hn::GetLane(acc[m][j]));
  }
#else
  const hn::Repartition<int32_t, DU64> di;
  constexpr int kLanes32 = 2 * kLanes;
  for (int m = 0; m < MR; ++m) {
    for (int q = 0; q < kVecs / 2; ++q) {
      // The even 32-bit halves of two u64 vectors make one i32 vector.
      hn::Store(
          hn::ConcatEven(di, hn::BitCast(di, acc[m][2 * q + 1]), hn::BitCast(di, acc[m][2 * q])),
          di, counts[m] + q * kLanes32);
    }
  }
#endif
  for (int m = 0; m < MR; ++m) StoreCounts<kPlanes>(counts[m], m, out);
}

// Pixels per tile: enough independent accumulators to hide the popcount-add latency, and few
// enough to stay in registers (32 on AVX-512, 16 on AVX2).
constexpr int kTilePixels = HWY_LANES(uint64_t) >= 8 ? 8 : 2;
constexpr int kHalfTile = kTilePixels / 2;

template <int MR, int kPlanes, bool kBytes, class Src>
HWY_INLINE void TileWords(const Src& src_taps, int taps, int words, const uint64_t* block,
                          const TileOutput& out) {
  switch (words) {
    case 1:
      return Tile<MR, 1, kPlanes, kBytes, Src>(src_taps, taps, words, block, out);
    case 2:
      return Tile<MR, 2, kPlanes, kBytes, Src>(src_taps, taps, words, block, out);
    case 4:
      return Tile<MR, 4, kPlanes, kBytes, Src>(src_taps, taps, words, block, out);
    case 8:
      return Tile<MR, 8, kPlanes, kBytes, Src>(src_taps, taps, words, block, out);
    default:
      return Tile<MR, 0, kPlanes, kBytes, Src>(src_taps, taps, words, block, out);
  }
}

// Binary counts in bytes (ByteCountedTaps) on AVX2, whose weights are nibbles; 64-bit counts
// elsewhere. (AVX3 without VPOPCNTQ counts bytes too, but would lose the weights shared by its 8
// pixels a tile; not measured there, it keeps plain weights and 64-bit counts.)
template <int MR, int kPlanes, class Src>
HWY_INLINE void TileAnyWords(const Src& src_taps, int taps, int words, const uint64_t* block,
                             const TileOutput& out) {
  if constexpr (kPlanes == 1 && kNibbleWeights) {
    return TileWords<MR, kPlanes, true>(src_taps, taps, words, block, out);
  } else {
    return TileWords<MR, kPlanes, false>(src_taps, taps, words, block, out);
  }
}

// Weight bytes of the blocks one pass over a row keeps hot in L1 (or L2 for the widest layers).
constexpr int64_t kBlockChunkBytes = 48 * 1024;

template <int kPlanes, class Src>
HWY_INLINE void Dispatch(int mr, const Src& src, int taps, int words, const uint64_t* block,
                         const TileOutput& to) {
  if (mr == kTilePixels) {
    TileAnyWords<kTilePixels, kPlanes>(src, taps, words, block, to);
  } else if (mr == kHalfTile) {
    TileAnyWords<kHalfTile, kPlanes>(src, taps, words, block, to);
  } else {
    TileAnyWords<1, kPlanes>(src, taps, words, block, to);
  }
}

// Blocks of output channels planned at once: their weights stay hot while the pixels stream.
constexpr int kMaxChunkBlocks = 64;

// The convolution driver shared by the binary and 2-bit kernels. Binary pads with kZeroWords
// (+1 signs) and corrects zero-padded taps with `tap_sums`; 2-bit reads `pad_pixel` and
// subtracts `zero` (the zero point times each channel's weight sum) from every output.
template <int kPlanes>
void BitConv2d(const Conv2dParams& params, const uint64_t* in, const uint64_t* pad_pixel,
               const uint64_t* packed, const int32_t* tap_sums, const int32_t* zero,
               const int64_t* offsets, const ConvOutput& o, int row_begin, int row_end) {
  // A copy: the outputs are written through pointers the compiler cannot tell from `params`.
  const Conv2dParams p = params;
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int words = PackedWords(cg);
  const int plane_words = words * kPlanes;  // per pixel and group
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock;
  const int weight_planes = kPlanes == 2 || kNibbleWeights ? 2 : 1;
  const int64_t block_words = static_cast<int64_t>(taps) * words * weight_planes * kBinaryOcBlock;
  const int chunk = static_cast<int>(std::clamp<int64_t>(kBlockChunkBytes / (block_words * 8), 1,
                                                         std::min(blocks, kMaxChunkBlocks)));
  const int64_t image_words = static_cast<int64_t>(p.in_h) * p.in_w * p.groups * plane_words;
  const bool zero_padding = kPlanes == 1 && p.pad_value == 0.f;
  const int64_t pixel_step = static_cast<int64_t>(p.stride_w) * p.groups * plane_words;
  const InteriorTiles interior_tiles(p);
  const int64_t out_pixel_bytes = OutputPixelBytes(o, p.out_c);
  auto* const out_base = static_cast<unsigned char*>(o.data);
  const bool bits_out = o.kind == OutputKind::kBits;

  const uint64_t* src_taps[kTilePixels * kMaxBinaryTaps];
  const uint64_t* tap_base[kMaxBinaryTaps];
  HWY_ALIGN int32_t corr[kTilePixels][kBinaryOcBlock];
  // Per block of the chunk, what does not change from tile to tile.
  struct BlockPlan {
    TileOutput to;
    const uint64_t* weights;
    HWY_ALIGN int64_t count_threshold[kBinaryOcBlock];
  };
  BlockPlan plan[kMaxChunkBlocks];
  BlockTail tail;  // only a group's last block can be partial
  const int64_t px_begin = static_cast<int64_t>(row_begin) * p.out_w;
  const int64_t px_end = static_cast<int64_t>(row_end) * p.out_w;
  const int64_t plane = static_cast<int64_t>(p.out_h) * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    const uint64_t* pad = kPlanes == 1 ? kZeroWords : pad_pixel + g * plane_words;
    for (int blk0 = 0; blk0 < blocks; blk0 += chunk) {
      const int nblk = std::min(blocks, blk0 + chunk) - blk0;
      for (int i = 0; i < nblk; ++i) {
        const int oc0 = (blk0 + i) * kBinaryOcBlock;  // within the group
        const int c0 = g * out_cg + oc0;              // within the layer
        const int count = std::min(kBinaryOcBlock, out_cg - oc0);
        TileOutput& to = plan[i].to;
        to = TileOutput{taps * cg, BlockOf(o, p.out_c, c0, count, &tail),
                        nullptr,   BlockOf(zero, c0, count, 0, tail.zero),
                        nullptr,   nullptr};
        if (bits_out) {
          // d < t, with d = k_total - 2 * count, is count > floor((k_total - t) / 2).
          for (int j = 0; j < kBinaryOcBlock; ++j) {
            plan[i].count_threshold[j] = (int64_t{to.k_total} - to.block.threshold[j]) >> 1;
          }
        }
        plan[i].weights = packed + (static_cast<int64_t>(g) * blocks + blk0 + i) * block_words;
      }
      // The output pixel px as image b, row oy, column ox, advanced tile by tile.
      int64_t b = px_begin / plane;
      int oy = static_cast<int>(px_begin % plane / p.out_w);
      int ox = static_cast<int>(px_begin % p.out_w);
      for (int64_t px = px_begin; px < px_end;) {
        const int64_t left = px_end - px;
        const int mr = left >= kTilePixels ? kTilePixels : left >= kHalfTile ? kHalfTile : 1;
        // Interior tiles read every tap inside one image at one pointer per tap.
        const bool interior = interior_tiles.Interior(oy, ox, mr);
        const int64_t* offs[kTilePixels];
        bool padded[kTilePixels] = {};
        bool any_padded = false;
        unsigned char* px_out[kTilePixels];
        {
          int64_t mb = b;
          int my = oy, mx = ox;
          for (int m = 0; m < mr; ++m) {
            offs[m] = offsets + (static_cast<int64_t>(my) * p.out_w + mx) * taps;
            px_out[m] = out_base + (px + m) * out_pixel_bytes;
            const uint64_t* image = in + mb * image_words + g * plane_words;
            if (interior) {
              if (m == 0) {
                for (int t = 0; t < taps; ++t) tap_base[t] = image + offs[0][t] * kPlanes;
              }
            } else {
              for (int t = 0; t < taps; ++t) {
                const int64_t off = offs[m][t];
                padded[m] |= off < 0;
                src_taps[m * taps + t] = off >= 0 ? image + off * kPlanes : pad;
              }
              any_padded |= padded[m];
            }
            if (++mx == p.out_w) {
              mx = 0;
              if (++my == p.out_h) my = 0, ++mb;
            }
          }
          // The next tile starts where this one ends.
          b = mb;
          oy = my;
          ox = mx;
        }
        const GatheredSrc gathered{src_taps, taps};
        const StridedSrc strided{tap_base, pixel_step};
        const int32_t* corr_ptr[kTilePixels] = {};
        const bool correct = zero_padding && any_padded;
        for (int i = 0; i < nblk; ++i) {
          TileOutput& to = plan[i].to;
          if (correct) {
            // Zero-padded taps read +1 signs; take back what they added.
            const int c0 = g * out_cg + (blk0 + i) * kBinaryOcBlock;
            for (int m = 0; m < mr; ++m) {
              corr_ptr[m] = nullptr;
              if (!padded[m]) continue;
              for (int j = 0; j < kBinaryOcBlock; ++j) {
                int32_t sum = 0;
                if (j < to.block.count) {
                  const int32_t* sums = tap_sums + static_cast<int64_t>(c0 + j) * taps;
                  for (int t = 0; t < taps; ++t) sum += offs[m][t] < 0 ? sums[t] : 0;
                }
                corr[m][j] = sum;
              }
              corr_ptr[m] = corr[m];
            }
          }
          to.corr = corr_ptr;
          to.px = px_out;
          to.count_threshold =
              kPlanes == 1 && bits_out && !correct ? plan[i].count_threshold : nullptr;
          if (interior) {
            Dispatch<kPlanes>(mr, strided, taps, words, plan[i].weights, to);
          } else {
            Dispatch<kPlanes>(mr, gathered, taps, words, plan[i].weights, to);
          }
        }
        px += mr;
      }
    }
  }
}

void BinaryConv2dImpl(const Conv2dParams& p, const uint64_t* in, const uint64_t* packed,
                      const int32_t* tap_sums, const int64_t* offsets, const ConvOutput& o,
                      int row_begin, int row_end) {
  BitConv2d<1>(p, in, nullptr, packed, tap_sums, nullptr, offsets, o, row_begin, row_end);
}

void Bit2Conv2dImpl(const Conv2dParams& p, const uint64_t* in, const uint64_t* pad_pixel,
                    const uint64_t* packed, const int32_t* zero, const int64_t* offsets,
                    const ConvOutput& o, int row_begin, int row_end) {
  BitConv2d<2>(p, in, pad_pixel, packed, nullptr, zero, offsets, o, row_begin, row_end);
}

// Stored 2-bit values u = clamp(round(x / scale) + zero_point, qmin, qmax) - qmin in [0, 3], as
// two bit planes per word of 64 channels.
void QuantizeBitplanes2Impl(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                            const float* in, uint64_t* out) {
  const hn::ScalableTag<float> df;
  const int n = static_cast<int>(hn::Lanes(df));
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  const auto scale = hn::Set(df, q.scale);
  const auto shift = hn::Set(df, static_cast<float>(q.zero_point - q.qmin));
  const auto hi = hn::Set(df, static_cast<float>(q.qmax - q.qmin));
  const auto one = hn::Set(df, 1.f), two = hn::Set(df, 2.f), three = hn::Set(df, 3.f);
  for (int64_t px = 0; px < pixels; ++px) {
    const float* x = in + px * channels;
    for (int g = 0; g < groups; ++g) {
      for (int w = 0; w < words; ++w) {
        const int c0 = g * cg + w * 64;
        const int count = std::min(64, cg - w * 64);
        uint64_t b0 = 0, b1 = 0;
        int c = 0;
        if (n <= 64) {
          for (; c + n <= count; c += n) {
            auto u = hn::Add(hn::Round(hn::Div(hn::LoadU(df, x + c0 + c), scale)), shift);
            u = hn::Min(hn::Max(u, hn::Zero(df)), hi);
            uint8_t m0[8] = {}, m1[8] = {};
            hn::StoreMaskBits(df, hn::Or(hn::Eq(u, one), hn::Eq(u, three)), m0);
            hn::StoreMaskBits(df, hn::Ge(u, two), m1);
            uint64_t v0 = 0, v1 = 0;
            std::memcpy(&v0, m0, sizeof(v0));
            std::memcpy(&v1, m1, sizeof(v1));
            if (n < 64) {
              v0 &= (uint64_t{1} << n) - 1;
              v1 &= (uint64_t{1} << n) - 1;
            }
            b0 |= v0 << c;
            b1 |= v1 << c;
          }
        }
        for (; c < count; ++c) {
          const int u = QuantizeOneU8(q, x[c0 + c]) - q.offset - q.qmin;
          b0 |= static_cast<uint64_t>(u & 1) << c;
          b1 |= static_cast<uint64_t>((u >> 1) & 1) << c;
        }
        *out++ = b0;
        *out++ = b1;
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
HWY_EXPORT(Bit2Conv2dImpl);
HWY_EXPORT(QuantizeBitplanes2Impl);
HWY_EXPORT(BinaryWeightsAsNibblesImpl);

bool BinaryWeightsAsNibbles() { return HWY_DYNAMIC_DISPATCH(BinaryWeightsAsNibblesImpl)(); }

void Bit2Conv2d(const Conv2dParams& p, const uint64_t* in, const uint64_t* pad_pixel,
                const uint64_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(Bit2Conv2dImpl)
  (p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end);
}

void QuantizeBitplanes2(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                        const float* in, uint64_t* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeBitplanes2Impl)(pixels, channels, groups, q, in, out);
}

void BitpackF32(int64_t pixels, int channels, int groups, const float* below, const float* above,
                const float* in, uint64_t* out) {
  HWY_DYNAMIC_DISPATCH(BitpackF32Impl)(pixels, channels, groups, below, above, in, out);
}

void BinaryConv2d(const Conv2dParams& p, const uint64_t* in, const uint64_t* packed,
                  const int32_t* tap_sums, const int64_t* offsets, const ConvOutput& o,
                  int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(BinaryConv2dImpl)
  (p, in, packed, tap_sums, offsets, o, row_begin, row_end);
}

}  // namespace hybrid::kernels
#endif  // HWY_ONCE
