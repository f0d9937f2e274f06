// The 2-bit lookup kernel (bit2_lut.h), compiled once per SIMD target by Highway and dispatched
// at run time. AVX3_DL runs the lookups as VPERMB and the code conversion as VPERMB plus
// VPMULTISHIFTQB; every other target runs the same layouts through portable code, so that the
// layouts are tested on all of them.
//
// A tile is MR output pixels by NB blocks of 64 output channels. Per pixel and block, a register
// of byte sums over the last kLutRun lookups (each entry at most 18, so 14 fit in a byte), and
// two vectors of 16-bit sums they are widened into, in memory: `lo` adds the byte pairs as words,
// `hi` the high bytes alone; the low bytes' sums are then lo - 256 * hi, exact modulo 2^16 and
// below 2^15. After kWidenings widenings (or at the end) the 16-bit sums go to 32-bit sums.
// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <algorithm>
#include <array>
#include <cstring>

#include "kernels/binary.h"
#include "kernels/bit2_lut.h"
#include "kernels/interior.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/bit2_lut.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/output-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Lookups summed in bytes before widening: 14 * 18 <= 255.
constexpr int kLutRun = 14;
// Widenings summed in 16-bit lanes before they go to 32 bits: 130 * 14 * 18 < 2^15.
constexpr int kWidenings = 130;
// The bias of every table entry (entries are 9 + the dot product).
constexpr int kEntryBias = 9;

#if HWY_TARGET == HWY_AVX3_DL
// The code conversion's byte gather and bit shifts (Bit2LutCodesImpl explains them), made at
// compile time.
using Bytes64 = std::array<uint8_t, 64>;
constexpr Bytes64 MakeCodeGather() {
  Bytes64 gather{};
  for (int k = 0; k < 8; ++k) {
    for (int j = 0; j < 8; ++j) {
      const int n = 3 * k + (j < 4 ? std::min(j, 2) : std::min(j - 4, 2));
      const int plane = j < 4 ? 0 : 1;
      gather[k * 8 + j] = static_cast<uint8_t>((n / 8) * 16 + plane * 8 + n % 8);
    }
  }
  return gather;
}
constexpr std::array<Bytes64, 2> MakeCodeShifts() {
  std::array<Bytes64, 2> shifts{};
  for (int i = 0; i < 64; ++i) {
    shifts[0][i] = static_cast<uint8_t>(3 * (i % 8));
    shifts[1][i] = static_cast<uint8_t>(29 + 3 * (i % 8));
  }
  return shifts;
}
alignas(64) constexpr Bytes64 kCodeGather = MakeCodeGather();
alignas(64) constexpr std::array<Bytes64, 2> kCodeShifts = MakeCodeShifts();

// Word j of the ordered vectors: channel j's sum, from the low-byte (even channel) sums E (index
// j / 2) and the high-byte (odd channel) sums O (index 32 + j / 2) of VPERMT2W.
using Words32 = std::array<uint16_t, 32>;
constexpr std::array<Words32, 2> MakeSumOrder() {
  std::array<Words32, 2> order{};
  for (int j = 0; j < 32; ++j) {
    order[0][j] = static_cast<uint16_t>((j % 2) * 32 + j / 2);
    order[1][j] = static_cast<uint16_t>((j % 2) * 32 + 16 + j / 2);
  }
  return order;
}
alignas(64) constexpr std::array<Words32, 2> kSumOrder = MakeSumOrder();
#endif

bool Bit2LutTargetImpl() { return HWY_TARGET == HWY_AVX3_DL; }

void Bit2LutCodesImpl(int64_t pixels, int channels, int groups, const uint64_t* planes,
                      uint16_t* codes) {
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  const int triples = Bit2Triples(cg);
#if HWY_TARGET == HWY_AVX3_DL
  // 64 codes (192 channels: three words of each plane, 48 bytes) per step. Qword k of the
  // gathered vector holds bytes 3k..3k+2 of plane 0 in its bytes 0-2 and of plane 1 in bytes 4-6,
  // the 24 channels of codes 8k..8k+7; VPMULTISHIFTQB then picks each code's three bits of plane
  // 0 (at bit 3j) and of plane 1 (at bit 32 + 3j, fetched from 29 + 3j to land at bits 3-5).
  const __m512i gather_v = _mm512_load_si512(kCodeGather.data());
  const __m512i shifts0_v = _mm512_load_si512(kCodeShifts[0].data());
  const __m512i shifts1_v = _mm512_load_si512(kCodeShifts[1].data());
  const __m512i low3 = _mm512_set1_epi8(0x07), mid3 = _mm512_set1_epi8(0x38);
  for (int64_t px = 0; px < pixels * groups; ++px) {
    const uint64_t* w = planes + px * words * 2;
    uint16_t* out = codes + px * triples;
    for (int q = 0; q * 64 < triples; ++q) {
      const int qwords = std::min(6, (words - 3 * q) * 2);
      const __m512i raw =
          _mm512_maskz_loadu_epi64(static_cast<__mmask8>((1u << qwords) - 1), w + 6 * q);
      const __m512i bytes = _mm512_permutexvar_epi8(gather_v, raw);
      const __m512i b0 = _mm512_multishift_epi64_epi8(shifts0_v, bytes);
      const __m512i b1 = _mm512_multishift_epi64_epi8(shifts1_v, bytes);
      const __m512i code = _mm512_or_si512(_mm512_and_si512(b0, low3), _mm512_and_si512(b1, mid3));
      const int n = std::min(64, triples - q * 64);
      const __m512i lo = _mm512_slli_epi16(_mm512_cvtepu8_epi16(_mm512_castsi512_si256(code)), 6);
      const __m512i hi =
          _mm512_slli_epi16(_mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(code, 1)), 6);
      const __mmask32 lo_mask = n >= 32 ? ~__mmask32{0} : (__mmask32{1} << n) - 1;
      _mm512_mask_storeu_epi16(out + q * 64, lo_mask, lo);
      if (n > 32) {
        const __mmask32 hi_mask = n >= 64 ? ~__mmask32{0} : (__mmask32{1} << (n - 32)) - 1;
        _mm512_mask_storeu_epi16(out + q * 64 + 32, hi_mask, hi);
      }
    }
  }
#else
  for (int64_t px = 0; px < pixels * groups; ++px) {
    const uint64_t* w = planes + px * words * 2;
    for (int i = 0; i < triples; ++i) {
      const int c = 3 * i, word = c / 64, bit = c % 64;
      uint64_t b0 = w[word * 2] >> bit, b1 = w[word * 2 + 1] >> bit;
      if (bit > 61 && word + 1 < words) {
        b0 |= w[word * 2 + 2] << (64 - bit);
        b1 |= w[word * 2 + 3] << (64 - bit);
      }
      // Channels past cg are 0 in the planes (binary.h), except where a triple ends the group.
      const int valid = std::min(3, cg - c);
      const uint64_t mask = (uint64_t{1} << valid) - 1;
      *codes++ = static_cast<uint16_t>(((b0 & mask) | ((b1 & mask) << 3)) * 64);
    }
  }
#endif
}

struct Gathered {
  const uint16_t* const* ptrs;
  int taps;
  HWY_INLINE const uint16_t* At(int m, int t) const { return ptrs[m * taps + t]; }
};
struct Strided {
  const uint16_t* const* tap_base;
  int64_t step;
  HWY_INLINE const uint16_t* At(int m, int t) const { return tap_base[t] + m * step; }
};

// The 32-bit sums of MR pixels and NB blocks of 64 channels, less zero[nb][j], into
// sums[m * NB * 64 + nb * 64 + j]: the weights of block nb at w + nb * block_bytes.
#if HWY_TARGET == HWY_AVX3_DL
// Adds the byte sums x to the 16-bit sums: the byte pairs as words to lo, the high bytes to hi;
// kFresh: lo and hi hold nothing yet, and take x as it is (zeroing them cost a rep stos per
// tile, 6% of a 1x1 layer's time).
// A function, not a lambda: a lambda that captured x made GCC store every byte sum back to memory
// after every lookup of the 8 x 1 tile (perf: 3x3_c64 ran at 0.6x of the 4 x 2 tile's rate).
template <bool kFresh, int MR, int NB>
HWY_INLINE void Widen(const __m512i (&x)[MR][NB], int16_t (&lo)[MR][NB][32],
                      int16_t (&hi)[MR][NB][32]) {
  for (int m = 0; m < MR; ++m) {
    for (int nb = 0; nb < NB; ++nb) {
      const __m512i high = _mm512_srli_epi16(x[m][nb], 8);
      if constexpr (kFresh) {
        _mm512_store_si512(lo[m][nb], x[m][nb]);
        _mm512_store_si512(hi[m][nb], high);
      } else {
        _mm512_store_si512(lo[m][nb], _mm512_add_epi16(_mm512_load_si512(lo[m][nb]), x[m][nb]));
        _mm512_store_si512(hi[m][nb], _mm512_add_epi16(_mm512_load_si512(hi[m][nb]), high));
      }
    }
  }
}

// KW > 0: an interior tile of one block at stride 1 and dilation 1 along the row, taps in rows
// of KW: pixel m's tap (ky, kx) reads input column m + kx, so each input pixel's table row is
// loaded once for the up to KW lookups that use it (MR + KW - 1 row loads per MR * KW lookups,
// where one block otherwise loads a row per lookup).
template <int MR, int NB, class Src, int KW = 0>
HWY_INLINE void LutTile(const Src& src, int taps, int triples, const uint8_t* w,
                        int64_t block_bytes, const int32_t* const* zero, int32_t* sums) {
  static_assert(KW == 0 || (NB == 1 && KW <= kLutRun), "rows of taps: one block");
  constexpr int kStride = NB * kBit2LutOcBlock;
  const uint8_t* table = kBit2LutTable.data();
  // The byte sums live in registers through a run of lookups; the 16-bit sums in memory, touched
  // once per run (kept in registers too, GCC reloads them on every lookup). Neither lo and hi nor
  // the 32-bit sums are zeroed first: the first widening and the first spill write them.
  __m512i x[MR][NB];
  alignas(64) int16_t lo[MR][NB][32], hi[MR][NB][32];
  bool fresh = true, first_spill = true;
  int run = 0, widenings = 0;
  int32_t pending = 0;  // lookups in lo and hi, for the bias
  auto spill = [&] {
    const __m512i order0 = _mm512_load_si512(kSumOrder[0].data());
    const __m512i order1 = _mm512_load_si512(kSumOrder[1].data());
    const __m512i bias = _mm512_set1_epi32(kEntryBias * pending);
    for (int m = 0; m < MR; ++m) {
      for (int nb = 0; nb < NB; ++nb) {
        const __m512i h16 = _mm512_load_si512(hi[m][nb]);
        const __m512i even =
            _mm512_sub_epi16(_mm512_load_si512(lo[m][nb]), _mm512_slli_epi16(h16, 8));
        const __m512i words[2] = {_mm512_permutex2var_epi16(even, order0, h16),
                                  _mm512_permutex2var_epi16(even, order1, h16)};
        int32_t* s = sums + m * kStride + nb * kBit2LutOcBlock;
        for (int h = 0; h < 4; ++h) {
          const __m256i half = h % 2 == 0 ? _mm512_castsi512_si256(words[h / 2])
                                          : _mm512_extracti64x4_epi64(words[h / 2], 1);
          const __m512i v = _mm512_sub_epi32(_mm512_cvtepu16_epi32(half), bias);
          const __m512i before =
              first_spill ? _mm512_loadu_si512(zero[nb] + 16 * h) : _mm512_load_si512(s + 16 * h);
          _mm512_store_si512(
              s + 16 * h, first_spill ? _mm512_sub_epi32(v, before) : _mm512_add_epi32(before, v));
        }
      }
    }
    pending = 0;
    widenings = 0;
    fresh = true;
    first_spill = false;
  };
  for (int m = 0; m < MR; ++m) {
    for (int nb = 0; nb < NB; ++nb) x[m][nb] = _mm512_setzero_si512();
  }
  // Lookups per accumulator and triple, and the steps of the outer loop: taps, or rows of taps.
  constexpr int kPerTriple = KW > 0 ? KW : 1;
  const int steps = taps / kPerTriple;
  const int64_t tap_bytes = static_cast<int64_t>(triples) * kBit2LutOcBlock;
  for (int t = 0; t < steps; ++t) {
    const uint16_t* c[MR];
    for (int m = 0; m < MR; ++m) c[m] = src.At(m, t * kPerTriple);
    const uint8_t* wt = w + t * kPerTriple * tap_bytes;
    for (int i = 0; i < triples;) {
      // A stretch of lookups with nothing else live but the byte sums.
      const int end = i + std::min(triples - i, (kLutRun - run) / kPerTriple);
      run += (end - i) * kPerTriple;
      if constexpr (KW > 0) {
        // Input column col of the tile's row is pixel col - kx's tap kx.
        constexpr int kCols = MR + KW - 1;
        const int64_t step = src.step;
        // One code at a time: with four codes' weights (4 x KW vectors) live, GCC spilled the
        // byte sums.
        for (; i < end; ++i) {
          __m512i wv[KW];
          for (int kx = 0; kx < KW; ++kx) {
            wv[kx] = _mm512_loadu_si512(wt + kx * tap_bytes + i * kBit2LutOcBlock);
          }
          // Unrolled whole, so that x[m] names a register.
#pragma GCC unroll 16
          for (int col = 0; col < kCols; ++col) {
            const __m512i row = _mm512_load_si512(table + c[0][col * step + i]);
            for (int kx = 0; kx < KW; ++kx) {
              const int m = col - kx;
              if (m >= 0 && m < MR) {
                x[m][0] = _mm512_add_epi8(x[m][0], _mm512_permutexvar_epi8(wv[kx], row));
              }
            }
          }
        }
      }
      // Four codes of a pixel in one load: the scalar loads of codes, one per table row, were
      // as many as the vector loads, and loads are what the loop waits on.
      for (; KW == 0 && i + 4 <= end; i += 4) {
        __m512i wv[4][NB];
        for (int k = 0; k < 4; ++k) {
          for (int nb = 0; nb < NB; ++nb) {
            wv[k][nb] = _mm512_loadu_si512(wt + (i + k) * kBit2LutOcBlock + nb * block_bytes);
          }
        }
        for (int m = 0; m < MR; ++m) {
          uint64_t codes4;
          std::memcpy(&codes4, c[m] + i, sizeof(codes4));
          for (int k = 0; k < 4; ++k) {
            const __m512i row =
                _mm512_load_si512(table + static_cast<uint16_t>(codes4 >> (16 * k)));
            for (int nb = 0; nb < NB; ++nb) {
              x[m][nb] = _mm512_add_epi8(x[m][nb], _mm512_permutexvar_epi8(wv[k][nb], row));
            }
          }
        }
      }
      for (; KW == 0 && i < end; ++i) {
        __m512i wv[NB];
        for (int nb = 0; nb < NB; ++nb) {
          wv[nb] = _mm512_loadu_si512(wt + i * kBit2LutOcBlock + nb * block_bytes);
        }
        for (int m = 0; m < MR; ++m) {
          const __m512i row = _mm512_load_si512(table + c[m][i]);
          for (int nb = 0; nb < NB; ++nb) {
            x[m][nb] = _mm512_add_epi8(x[m][nb], _mm512_permutexvar_epi8(wv[nb], row));
          }
        }
      }
      if (run + kPerTriple > kLutRun) {
        if (fresh) {
          Widen<true>(x, lo, hi);
        } else {
          Widen<false>(x, lo, hi);
        }
        fresh = false;
        pending += run;
        run = 0;
        for (int m = 0; m < MR; ++m) {
          for (int nb = 0; nb < NB; ++nb) x[m][nb] = _mm512_setzero_si512();
        }
        if (++widenings == kWidenings) spill();
      }
    }
  }
  if (fresh) {
    Widen<true>(x, lo, hi);
  } else {
    Widen<false>(x, lo, hi);
  }
  pending += run;
  spill();
}
#endif

// The same sums one channel at a time, for any MR.
template <class Src>
HWY_INLINE void LutTilePortable(int mr, int nbs, const Src& src, int taps, int triples,
                                const uint8_t* w, int64_t block_bytes, const int32_t* const* zero,
                                int32_t* sums) {
  const uint8_t* table = kBit2LutTable.data();
  for (int m = 0; m < mr; ++m) {
    for (int nb = 0; nb < nbs; ++nb) {
      for (int j = 0; j < kBit2LutOcBlock; ++j) {
        int32_t sum = -zero[nb][j];
        for (int t = 0; t < taps; ++t) {
          const uint16_t* c = src.At(m, t);
          const uint8_t* wt =
              w + nb * block_bytes + static_cast<int64_t>(t) * triples * kBit2LutOcBlock + j;
          for (int i = 0; i < triples; ++i) {
            sum += table[c[i] + wt[i * kBit2LutOcBlock]] - kEntryBias;
          }
        }
        sums[m * nbs * kBit2LutOcBlock + nb * kBit2LutOcBlock + j] = sum;
      }
    }
  }
}

// Tiles of MR pixels and NB blocks, MR counted down from kMax to the tile's size; KW as LutTile.
template <int NB, int kMax, int KW = 0, class Src>
HWY_INLINE void LutDispatch(int mr, const Src& src, int taps, int triples, const uint8_t* w,
                            int64_t block_bytes, const int32_t* const* zero, int32_t* sums) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kMax > 1) {
    if (mr < kMax) {
      return LutDispatch<NB, kMax - 1, KW>(mr, src, taps, triples, w, block_bytes, zero, sums);
    }
  }
  LutTile<kMax, NB, Src, KW>(src, taps, triples, w, block_bytes, zero, sums);
#else
  LutTilePortable(mr, NB, src, taps, triples, w, block_bytes, zero, sums);
#endif
}

// Pixels per tile: with two blocks 4 x 2 x 3 accumulators, with one 8 x 3, and room besides
// for the weights and a table row within AVX-512's 32 registers.
constexpr int kPairPixels = 4;
constexpr int kSinglePixels = 8;

// Pixels in the next tile when `left` remain, at most `max`: tiles of equal size as near as may
// be, so that the last is not a small one.
inline int NextTilePixels(int64_t left, int max) {
  const int64_t tiles = (left + max - 1) / max;
  return static_cast<int>((left + tiles - 1) / tiles);
}

// Weight bytes of the blocks one pass over a row keeps hot in L1 (or L2 for the widest layers).
constexpr int64_t kBlockChunkBytes = 48 * 1024;
constexpr int kMaxChunkBlocks = 16;

// The driver, with the rows-of-3 tiles for single blocks (kRowsOf3) or without, as two functions
// so that layers without single blocks run the code they ran before: with both tiles in one
// function the pair tiles measured 0.9-0.95x as fast (3x3_c128_h28, on a noisy day), and with the
// rows tiles behind a call inside the loop every layer ran 0.6-0.7x as fast.
template <bool kRowsOf3>
HWY_NOINLINE void LutConv(const Conv2dParams& params, const uint16_t* in, const uint16_t* pad_codes,
                          const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                          const ConvOutput& o, int row_begin, int row_end) {
  // A copy: the outputs are written through pointers the compiler cannot tell from `params`.
  const Conv2dParams p = params;
  const int cg = p.in_c / p.groups;
  const int triples = Bit2Triples(cg);
  const int out_cg = p.out_c / p.groups;
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBit2LutOcBlock - 1) / kBit2LutOcBlock;
  const int64_t block_bytes = static_cast<int64_t>(taps) * triples * kBit2LutOcBlock;
  int chunk = static_cast<int>(std::clamp<int64_t>(
      std::max<int64_t>(2, kBlockChunkBytes / block_bytes), 1, std::min(blocks, kMaxChunkBlocks)));
  if (chunk > 2) chunk -= chunk % 2;  // whole pairs
  const int64_t pixel_codes = static_cast<int64_t>(p.groups) * triples;
  const int64_t image_codes = static_cast<int64_t>(p.in_h) * p.in_w * pixel_codes;
  const int64_t pixel_step = p.stride_w * pixel_codes;
  const InteriorTiles interior_tiles(p);
  const int64_t out_pixel_bytes = OutputPixelBytes(o, p.out_c);
  auto* const out_base = static_cast<unsigned char*>(o.data);
  const hn::CappedTag<int32_t, kOutputBlock> di;
  constexpr int kOutBlocks = kBit2LutOcBlock / kOutputBlock;

  const uint16_t* src_taps[kSinglePixels * kMaxBinaryTaps];
  const uint16_t* tap_base[kMaxBinaryTaps];
  struct BlockPlan {
    BlockOutput out[kOutBlocks];
    int outs;  // output blocks of 16 that exist
    HWY_ALIGN int32_t zero[kBit2LutOcBlock];
  };
  BlockPlan plan[kMaxChunkBlocks];
  BlockTail tail;  // only a group's last block of 16 can be partial
  HWY_ALIGN int32_t sums[kSinglePixels * kBit2LutOcBlock];
  const int64_t px_begin = static_cast<int64_t>(row_begin) * p.out_w;
  const int64_t px_end = static_cast<int64_t>(row_end) * p.out_w;
  const int64_t plane = static_cast<int64_t>(p.out_h) * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int blk0 = 0; blk0 < blocks; blk0 += chunk) {
      const int nblk = std::min(blocks, blk0 + chunk) - blk0;
      for (int i = 0; i < nblk; ++i) {
        const int oc0 = (blk0 + i) * kBit2LutOcBlock;  // within the group
        BlockPlan& bp = plan[i];
        bp.outs = 0;
        for (int ob = 0; ob < kOutBlocks && oc0 + ob * kOutputBlock < out_cg; ++ob) {
          const int c0 = g * out_cg + oc0 + ob * kOutputBlock;
          const int count = std::min(kOutputBlock, out_cg - oc0 - ob * kOutputBlock);
          bp.out[ob] = BlockOf(o, p.out_c, c0, count, &tail);
          ++bp.outs;
        }
        for (int j = 0; j < kBit2LutOcBlock; ++j) {
          bp.zero[j] = oc0 + j < out_cg && zero != nullptr ? zero[g * out_cg + oc0 + j] : 0;
        }
      }
      const int max_mr = nblk >= 2 ? kPairPixels : kSinglePixels;
      // The output pixel px as image b, row oy, column ox, advanced tile by tile.
      int64_t b = px_begin / plane;
      int oy = static_cast<int>(px_begin % plane / p.out_w);
      int ox = static_cast<int>(px_begin % p.out_w);
      for (int64_t px = px_begin; px < px_end;) {
        const int mr = NextTilePixels(px_end - px, max_mr);
        const bool interior = interior_tiles.Interior(oy, ox, mr);
        unsigned char* px_out[kSinglePixels];
        {
          int64_t mb = b;
          int my = oy, mx = ox;
          for (int m = 0; m < mr; ++m) {
            const int64_t* offs = offsets + (static_cast<int64_t>(my) * p.out_w + mx) * taps;
            const uint16_t* image = in + mb * image_codes + g * triples;
            px_out[m] = out_base + (px + m) * out_pixel_bytes;
            if (interior) {
              if (m == 0) {
                for (int t = 0; t < taps; ++t) tap_base[t] = image + offs[t];
              }
            } else {
              for (int t = 0; t < taps; ++t) {
                src_taps[m * taps + t] = offs[t] >= 0 ? image + offs[t] : pad_codes + g * triples;
              }
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
        const Gathered gathered{src_taps, taps};
        const Strided strided{tap_base, pixel_step};
        for (int i = 0; i < nblk;) {
          const int nb = i + 2 <= nblk ? 2 : 1;
          const uint8_t* w = packed + (static_cast<int64_t>(g) * blocks + blk0 + i) * block_bytes;
          const int32_t* zeros[2] = {plan[i].zero, plan[i + nb - 1].zero};
          if (nb == 2) {
            if (interior) {
              LutDispatch<2, kPairPixels>(mr, strided, taps, triples, w, block_bytes, zeros, sums);
            } else {
              LutDispatch<2, kPairPixels>(mr, gathered, taps, triples, w, block_bytes, zeros, sums);
            }
          } else if (kRowsOf3 && interior) {
            LutDispatch<1, kSinglePixels, kRowsOf3 ? 3 : 0>(mr, strided, taps, triples, w,
                                                            block_bytes, zeros, sums);
          } else if (interior) {
            LutDispatch<1, kSinglePixels>(mr, strided, taps, triples, w, block_bytes, zeros, sums);
          } else {
            LutDispatch<1, kSinglePixels>(mr, gathered, taps, triples, w, block_bytes, zeros, sums);
          }
          for (int k = 0; k < nb; ++k) {
            const BlockPlan& bp = plan[i + k];
            for (int ob = 0; ob < bp.outs; ++ob) {
              StoreBlocks(di, sums + k * kBit2LutOcBlock + ob * kOutputBlock, nb * kBit2LutOcBlock,
                          mr, 0, bp.out[ob], px_out);
            }
          }
          i += nb;
        }
        px += mr;
      }
    }
  }
}

// Single blocks of 3-wide kernels at stride 1 and dilation 1 along the row read each input
// pixel's table row once for its three taps.
void Bit2LutConv2dImpl(const Conv2dParams& p, const uint16_t* in, const uint16_t* pad_codes,
                       const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                       const ConvOutput& o, int row_begin, int row_end) {
  const int blocks = (p.out_c / p.groups + kBit2LutOcBlock - 1) / kBit2LutOcBlock;
  if (blocks % 2 == 1 && Bit2LutRowsOf3(p)) {
    LutConv<true>(p, in, pad_codes, packed, zero, offsets, o, row_begin, row_end);
  } else {
    LutConv<false>(p, in, pad_codes, packed, zero, offsets, o, row_begin, row_end);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hybrid::kernels {

HWY_EXPORT(Bit2LutTargetImpl);
HWY_EXPORT(Bit2LutCodesImpl);

bool Bit2LutPreferred(const Conv2dParams& p) {
  const int out_cg = p.out_c / p.groups;
  return HWY_DYNAMIC_DISPATCH(Bit2LutTargetImpl)() &&
         (out_cg >= 2 * kBit2LutOcBlock || (out_cg == kBit2LutOcBlock && Bit2LutRowsOf3(p)));
}
HWY_EXPORT(Bit2LutConv2dImpl);

void Bit2LutCodes(int64_t pixels, int channels, int groups, const uint64_t* planes,
                  uint16_t* codes) {
  HWY_DYNAMIC_DISPATCH(Bit2LutCodesImpl)(pixels, channels, groups, planes, codes);
}

void Bit2LutConv2d(const Conv2dParams& p, const uint16_t* codes, const uint16_t* pad_codes,
                   const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                   const ConvOutput& o, int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(Bit2LutConv2dImpl)
  (p, codes, pad_codes, packed, zero, offsets, o, row_begin, row_end);
}

}  // namespace hybrid::kernels
#endif  // HWY_ONCE
