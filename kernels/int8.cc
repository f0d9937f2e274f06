// Integer kernels, compiled once per SIMD target by Highway and dispatched at run time.
//
// The convolution mirrors the binary one: tiles of MR output pixels times blocks of 16 output
// channels, taps found through an indirection buffer, each i32 lane accumulating four u8 x s8
// products. AVX3_DL has that instruction (VPDPBUSD); AVX-512 and AVX2 split each lane's four bytes
// into two 16-bit pairs for VPMADDWD (exact: 255 * 127 * 2 fits easily); the scalar and NEON
// code multiplies byte by byte.
// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/int8.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/int8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/output-inl.h"

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string lacks VNNI, which every such CPU has.
#pragma GCC target("avx512vnni")
#endif
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DI32 = hn::ScalableTag<int32_t>;
using VI32 = hn::Vec<DI32>;

// acc + the sum over each lane's four bytes of x (u8) times w (s8).
HWY_INLINE VI32 Dot4(DI32 d, VI32 acc, VI32 x, VI32 w) {
#if HWY_TARGET == HWY_AVX3_DL
  (void)d;
  return VI32{_mm512_dpbusd_epi32(acc.raw, x.raw, w.raw)};
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
  const hn::Repartition<uint32_t, DI32> du;
  const hn::Repartition<int16_t, DI32> d16;
  const auto lo_bytes = hn::Set(du, 0x00FF00FFu);
  const auto x_even = hn::BitCast(d16, hn::And(hn::BitCast(du, x), lo_bytes));
  const auto x_odd = hn::BitCast(d16, hn::And(hn::ShiftRight<8>(hn::BitCast(du, x)), lo_bytes));
  const auto w16 = hn::BitCast(d16, w);
  const auto w_even = hn::ShiftRight<8>(hn::ShiftLeft<8>(w16));  // arithmetic: sign-extends
  const auto w_odd = hn::ShiftRight<8>(w16);
#if HWY_TARGET == HWY_AVX3
  const VI32 even{_mm512_madd_epi16(x_even.raw, w_even.raw)};
  const VI32 odd{_mm512_madd_epi16(x_odd.raw, w_odd.raw)};
#else
  const VI32 even{_mm256_madd_epi16(x_even.raw, w_even.raw)};
  const VI32 odd{_mm256_madd_epi16(x_odd.raw, w_odd.raw)};
#endif
  (void)d;
  return hn::Add(acc, hn::Add(even, odd));
#else
  const hn::Repartition<uint32_t, DI32> du;
  const auto ux = hn::BitCast(du, x);
  const auto ff = hn::Set(du, 0xFFu);
  const VI32 x0 = hn::BitCast(d, hn::And(ux, ff));
  const VI32 x1 = hn::BitCast(d, hn::And(hn::ShiftRight<8>(ux), ff));
  const VI32 x2 = hn::BitCast(d, hn::And(hn::ShiftRight<16>(ux), ff));
  const VI32 x3 = hn::BitCast(d, hn::ShiftRight<24>(ux));
  acc = hn::Add(acc, hn::Mul(x0, hn::ShiftRight<24>(hn::ShiftLeft<24>(w))));
  acc = hn::Add(acc, hn::Mul(x1, hn::ShiftRight<24>(hn::ShiftLeft<16>(w))));
  acc = hn::Add(acc, hn::Mul(x2, hn::ShiftRight<24>(hn::ShiftLeft<8>(w))));
  return hn::Add(acc, hn::Mul(x3, hn::ShiftRight<24>(w)));
#endif
}

void QuantizeU8Impl(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                    const float* in, uint8_t* out) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> d8;
  const int n = static_cast<int>(hn::Lanes(df));
  const int cg = channels / groups;
  const int stored = Int8Channels(cg);
  const auto scale = hn::Set(df, q.scale);
  const auto zp = hn::Set(df, static_cast<float>(q.zero_point));
  const auto lo = hn::Set(df, static_cast<float>(q.qmin));
  const auto hi = hn::Set(df, static_cast<float>(q.qmax));
  const auto offset = hn::Set(di, q.offset);
  for (int64_t px = 0; px < pixels; ++px) {
    for (int g = 0; g < groups; ++g) {
      const float* x = in + px * channels + g * cg;
      uint8_t* y = out + (px * groups + g) * stored;
      int c = 0;
      for (; c + n <= cg; c += n) {
        // Division, not a reciprocal multiply, to round exactly as the reference does.
        auto v = hn::Add(hn::Round(hn::Div(hn::LoadU(df, x + c), scale)), zp);
        v = hn::Min(hn::Max(v, lo), hi);
        const auto i = hn::Add(hn::ConvertTo(di, v), offset);
        hn::StoreU(hn::DemoteTo(d8, i), d8, y + c);
      }
      for (; c < cg; ++c) y[c] = QuantizeOneU8(q, x[c]);
      for (; c < stored; ++c) y[c] = static_cast<uint8_t>(q.input_zero());
    }
  }
}

struct Gathered {
  const uint8_t* const* ptrs;
  int taps;
  HWY_INLINE const uint8_t* At(int m, int t) const { return ptrs[m * taps + t]; }
};
struct Strided {
  const uint8_t* const* tap_base;
  int64_t step;
  HWY_INLINE const uint8_t* At(int m, int t) const { return tap_base[t] + m * step; }
};

// Where one block's results go: its transform's arrays and `zero` hold 16 values (padded in the
// last block), px one pointer per pixel of the tile.
struct TileOutput {
  BlockOutput block;
  const int32_t* zero;       // input_zero * the channel's weight sum
  unsigned char* const* px;  // per pixel: the first byte of its output
};

constexpr int kLanes32 = static_cast<int>(HWY_LANES(int32_t)) < kInt8OcBlock
                             ? static_cast<int>(HWY_LANES(int32_t))
                             : kInt8OcBlock;
constexpr int kVecs = kInt8OcBlock / kLanes32;
// Pixels per tile: about 8 accumulators.
constexpr int kTilePixels = kVecs == 1 ? 8 : kVecs == 2 ? 4 : 2;

// Loads the weights of channels [j * kLanes32, (j + 1) * kLanes32) of one quad. With kNibbles
// the 64 weight bytes of a quad are 32 packed bytes (low nibbles hold bytes 0-31, high nibbles
// bytes 32-63, each a signed 4-bit value) and come out times 16: a nibble moved to the top of
// its byte is the s8 value 16 * w, so unpacking costs a shift and a mask instead of a
// sign extension, and the tile divides its sums by 16 (exactly: every product is a multiple of
// 16). 16 * w lies within [-112, 112], inside the s8 range the int8 kernel's sums are sized for.
template <bool kNibbles>
HWY_INLINE VI32 LoadWeights(DI32 d, const int8_t* quad_weights, int j) {
  if constexpr (!kNibbles) {
    return hn::LoadU(d, reinterpret_cast<const int32_t*>(quad_weights + j * kLanes32 * 4));
  } else {
    const auto* bytes = reinterpret_cast<const uint8_t*>(quad_weights);
#if HWY_TARGET == HWY_SCALAR
    // One i32 lane: unpack its four nibbles by hand.
    uint32_t lane = 0;
    for (int i = 0; i < 4; ++i) {
      const int b = j * 4 + i;
      const int nibble = b < 32 ? bytes[b] & 0x0F : bytes[b - 32] >> 4;
      lane |= static_cast<uint32_t>((nibble << 4) & 0xF0) << (8 * i);
    }
    return hn::Set(d, static_cast<int32_t>(lane));
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    static_assert(kLanes32 * 4 == 64, "one vector holds a quad");
    (void)j;
    // The 32 packed bytes in both halves; the low half shifted so that its low nibbles rise.
    const __m512i both =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes)));
    const __m512i shifts = _mm512_set_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    return VI32{_mm512_and_si512(_mm512_sllv_epi64(both, shifts), _mm512_set1_epi8(-16))};
#else
    const hn::Repartition<uint8_t, DI32> d8;
    const hn::Repartition<uint64_t, DI32> d64;
    const int first = j * kLanes32 * 4;  // the weight byte where this vector starts
    static_assert(kLanes32 * 4 <= 32, "a vector holds at most half a quad");
    const auto packed = hn::LoadU(d8, bytes + (first % 32));
    const auto top =
        first < 32 ? hn::BitCast(d8, hn::ShiftLeft<4>(hn::BitCast(d64, packed))) : packed;
    return hn::BitCast(d, hn::And(top, hn::Set(d8, uint8_t{0xF0})));
#endif
  }
}

// MR pixels times NB blocks of 16 output channels: with two blocks per tile on AVX-512 each
// broadcast input quad feeds two multiply-accumulates.
template <int MR, int NB, bool kNibbles, class Src>
HWY_INLINE void Tile(const Src& src, int taps, int quads, const int8_t* block, int64_t block_bytes,
                     const TileOutput* outs) {
  const DI32 d;
  constexpr int kAcc = NB * kVecs;
  // The sums start at -zero (times 16 with nibbles, see LoadWeights), which they then need not
  // subtract.
  VI32 acc[MR][kAcc];
  for (int nb = 0; nb < NB; ++nb) {
    for (int j = 0; j < kVecs; ++j) {
      const VI32 zero = hn::LoadU(d, outs[nb].zero + j * kLanes32);
      const VI32 start = hn::Neg(kNibbles ? hn::ShiftLeft<4>(zero) : zero);
      for (int m = 0; m < MR; ++m) acc[m][nb * kVecs + j] = start;
    }
  }
  for (int t = 0; t < taps; ++t) {
    const uint8_t* x[MR];
    for (int m = 0; m < MR; ++m) x[m] = src.At(m, t);
    constexpr int kQuadBytes = kNibbles ? kInt8OcBlock * 2 : kInt8OcBlock * 4;
    const int8_t* wt = block + static_cast<int64_t>(t) * quads * kQuadBytes;
    for (int k = 0; k < quads; ++k) {
      VI32 wv[kAcc];
      for (int nb = 0; nb < NB; ++nb) {
        for (int j = 0; j < kVecs; ++j) {
          wv[nb * kVecs + j] = LoadWeights<kNibbles>(d, wt + nb * block_bytes + k * kQuadBytes, j);
        }
      }
      for (int m = 0; m < MR; ++m) {
        int32_t quad;
        std::memcpy(&quad, x[m] + 4 * k, 4);
        const VI32 xv = hn::Set(d, quad);
        for (int j = 0; j < kAcc; ++j) acc[m][j] = Dot4(d, acc[m][j], xv, wv[j]);
      }
    }
  }
  // The sums leave the registers once, through loops the compiler unrolls, so that the
  // transform's loops may index them without keeping the accumulators in memory meanwhile.
  HWY_ALIGN int32_t sums[MR][kAcc * kLanes32];
  for (int m = 0; m < MR; ++m) {
    for (int j = 0; j < kAcc; ++j) hn::Store(acc[m][j], d, sums[m] + j * kLanes32);
  }
  for (int nb = 0; nb < NB; ++nb) {
    StoreBlocks(d, sums[0] + nb * kVecs * kLanes32, kAcc * kLanes32, MR, kNibbles ? 4 : 0,
                outs[nb].block, outs[nb].px);
  }
}

// Two blocks per tile where the 16 channels of a block fill one vector (AVX-512).
constexpr int kPairBlocks = kVecs == 1 ? 2 : 1;

// Tiles of kTilePixels / 2 to kTilePixels pixels, and of 1 for what no such tile fits.
template <int NB, bool kNibbles, class Src, int MR = kTilePixels>
HWY_INLINE void Dispatch(int mr, const Src& src, int taps, int quads, const int8_t* block,
                         int64_t block_bytes, const TileOutput* to) {
  if constexpr (MR > 1 && MR >= kTilePixels / 2) {
    if (mr == MR) {
      Tile<MR, NB, kNibbles>(src, taps, quads, block, block_bytes, to);
    } else {
      Dispatch<NB, kNibbles, Src, MR - 1>(mr, src, taps, quads, block, block_bytes, to);
    }
  } else {
    Tile<1, NB, kNibbles>(src, taps, quads, block, block_bytes, to);
  }
}

// Pixels in the next tile when `left` remain: tiles of equal size as near as may be, so that the
// last is not a small one with too few accumulators to hide the latency of the dot products.
inline int NextTilePixels(int64_t left) {
  if (left < kTilePixels / 2) return 1;
  const int64_t tiles = (left + kTilePixels - 1) / kTilePixels;
  return static_cast<int>((left + tiles - 1) / tiles);
}

constexpr int64_t kBlockChunkBytes = 48 * 1024;

// Blocks of output channels planned at once: their weights stay hot while the pixels stream.
constexpr int kMaxChunkBlocks = 64;

template <bool kNibbles>
void IntConv2d(const Conv2dParams& params, const uint8_t* in, const uint8_t* pad_pixel,
               const int8_t* packed, const int32_t* zero, const int64_t* offsets,
               const ConvOutput& o, int row_begin, int row_end) {
  // A copy: the outputs are written through pointers the compiler cannot tell from `params`.
  const Conv2dParams p = params;
  const int cg = p.in_c / p.groups;
  const int stored = Int8Channels(cg);
  const int quads = stored / 4;
  const int out_cg = p.out_c / p.groups;
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kInt8OcBlock - 1) / kInt8OcBlock;
  const int64_t block_bytes =
      static_cast<int64_t>(taps) * stored * kInt8OcBlock / (kNibbles ? 2 : 1);
  int chunk = static_cast<int>(
      std::clamp<int64_t>(std::max<int64_t>(kPairBlocks, kBlockChunkBytes / block_bytes), 1,
                          std::min(blocks, kMaxChunkBlocks)));
  // Whole pairs, so that no block but a group's last runs alone at half the accumulators.
  if (chunk > kPairBlocks) chunk -= chunk % kPairBlocks;
  const int64_t pixel_bytes = static_cast<int64_t>(p.groups) * stored;
  const int64_t image_bytes = static_cast<int64_t>(p.in_h) * p.in_w * pixel_bytes;
  const int64_t pixel_step = p.stride_w * pixel_bytes;
  const int span_w = (p.kernel_w - 1) * p.dilation_w;
  const int span_h = (p.kernel_h - 1) * p.dilation_h;
  const int ox_lo = (p.pad_left + p.stride_w - 1) / p.stride_w;
  const int ox_hi = p.in_w - 1 + p.pad_left - span_w < 0
                        ? 0
                        : (p.in_w - 1 + p.pad_left - span_w) / p.stride_w + 1;
  const int64_t out_pixel_bytes = OutputPixelBytes(o, p.out_c);
  auto* const out_base = static_cast<unsigned char*>(o.data);
  const uint8_t* src_taps[kTilePixels * kMaxInt8Taps];
  const uint8_t* tap_base[kMaxInt8Taps];
  TileOutput plan[kMaxChunkBlocks];
  BlockTail tail;  // only a group's last block can be partial
  const int64_t px_begin = static_cast<int64_t>(row_begin) * p.out_w;
  const int64_t px_end = static_cast<int64_t>(row_end) * p.out_w;
  const int64_t plane = static_cast<int64_t>(p.out_h) * p.out_w;
  for (int g = 0; g < p.groups; ++g) {
    for (int blk0 = 0; blk0 < blocks; blk0 += chunk) {
      const int nblk = std::min(blocks, blk0 + chunk) - blk0;
      for (int i = 0; i < nblk; ++i) {
        const int c0 = g * out_cg + (blk0 + i) * kInt8OcBlock;
        const int count = std::min(kInt8OcBlock, out_cg - (blk0 + i) * kInt8OcBlock);
        plan[i] = TileOutput{BlockOf(o, p.out_c, c0, count, &tail),
                             BlockOf(zero, c0, count, 0, tail.zero), nullptr};
      }
      // The output pixel px as image b, row oy, column ox, advanced tile by tile.
      int64_t b = px_begin / plane;
      int oy = static_cast<int>(px_begin % plane / p.out_w);
      int ox = static_cast<int>(px_begin % p.out_w);
      for (int64_t px = px_begin; px < px_end;) {
        const int64_t left = px_end - px;
        const int mr = NextTilePixels(left);
        const int iy0 = oy * p.stride_h - p.pad_top;
        const bool interior = ox + mr <= p.out_w && iy0 >= 0 && iy0 + span_h < p.in_h &&
                              ox >= ox_lo && ox + mr <= ox_hi;
        unsigned char* px_out[kTilePixels];
        {
          int64_t mb = b;
          int my = oy, mx = ox;
          for (int m = 0; m < mr; ++m) {
            const int64_t* offs = offsets + (static_cast<int64_t>(my) * p.out_w + mx) * taps;
            const uint8_t* image = in + mb * image_bytes + g * stored;
            px_out[m] = out_base + (px + m) * out_pixel_bytes;
            if (interior) {
              if (m == 0) {
                for (int t = 0; t < taps; ++t) tap_base[t] = image + offs[t];
              }
            } else {
              for (int t = 0; t < taps; ++t) {
                src_taps[m * taps + t] = offs[t] >= 0 ? image + offs[t] : pad_pixel + g * stored;
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
          const int nb = i + kPairBlocks <= nblk ? kPairBlocks : 1;
          for (int b2 = 0; b2 < nb; ++b2) plan[i + b2].px = px_out;
          const int8_t* block =
              packed + (static_cast<int64_t>(g) * blocks + blk0 + i) * block_bytes;
          if (nb == kPairBlocks && kPairBlocks > 1) {
            if (interior) {
              Dispatch<kPairBlocks, kNibbles>(mr, strided, taps, quads, block, block_bytes,
                                              plan + i);
            } else {
              Dispatch<kPairBlocks, kNibbles>(mr, gathered, taps, quads, block, block_bytes,
                                              plan + i);
            }
          } else if (interior) {
            Dispatch<1, kNibbles>(mr, strided, taps, quads, block, block_bytes, plan + i);
          } else {
            Dispatch<1, kNibbles>(mr, gathered, taps, quads, block, block_bytes, plan + i);
          }
          i += nb;
        }
        px += mr;
      }
    }
  }
}

void Int8Conv2dImpl(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                    const int8_t* packed, const int32_t* zero, const int64_t* offsets,
                    const ConvOutput& o, int row_begin, int row_end) {
  IntConv2d<false>(p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end);
}

void Int4Conv2dImpl(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                    const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                    const ConvOutput& o, int row_begin, int row_end) {
  IntConv2d<true>(p, in, pad_pixel, reinterpret_cast<const int8_t*>(packed), zero, offsets, o,
                  row_begin, row_end);
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hybrid::kernels {

HWY_EXPORT(QuantizeU8Impl);
HWY_EXPORT(Int8Conv2dImpl);
HWY_EXPORT(Int4Conv2dImpl);

void Int4Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(Int4Conv2dImpl)
  (p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end);
}

void QuantizeU8(int64_t pixels, int channels, int groups, const ActivationQuant& q, const float* in,
                uint8_t* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeU8Impl)(pixels, channels, groups, q, in, out);
}

void Int8Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const int8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end) {
  HWY_DYNAMIC_DISPATCH(Int8Conv2dImpl)
  (p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end);
}

}  // namespace hybrid::kernels
#endif  // HWY_ONCE
