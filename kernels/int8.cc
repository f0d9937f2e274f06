// Integer kernels, compiled once per SIMD target by Highway and dispatched at run time.
//
// The convolution mirrors the binary one: tiles of MR output pixels times blocks of 16 output
// channels, taps found through an indirection buffer, each i32 lane accumulating four u8 x s8
// products. AVX3_DL has that instruction (VPDPBUSD); AVX-512 and AVX2 split each lane's four bytes
// into two 16-bit pairs for VPMADDWD (exact: 255 * 127 * 2 fits easily); the scalar and NEON
// code multiplies byte by byte. Where the CPU has AMX (AmxActive), the AVX3_DL code runs the
// same sums on tiles instead (AmxConv2d below).
// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/int8.h"
#include "kernels/interior.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/int8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/output-inl.h"

// How the AMX code (in the AVX3_DL code below) walks a layer, and the scratch it needs: shared
// with Int8ConvScratchBytes, hence outside the per-target code (and compiled once).
#ifndef HYBRID_KERNELS_INT8_AMX_WALK_
#define HYBRID_KERNELS_INT8_AMX_WALK_
namespace hybrid::kernels::amx_walk {

constexpr int kRows = 16;              // pixels (or quads) per tile
constexpr int kPixels = 2 * kRows;     // pixels per tile of the kernel
constexpr int kRowBytes = 64;          // bytes per tile row
constexpr int kSumStride = 2 * kRows;  // i32 per pixel of a tile's sums: two blocks

// One step's sums waiting for their output transform: a pair of blocks for one tile of pixels.
struct Pending {
  BlockOutput outs[2];
  BlockTail tail[2];  // the parameters of a partial block, which outs may point into
  int nblk = 0;
  int mr = 0;
  unsigned char* px_out[kPixels];  // null for a pixel computed but not the layer's
  alignas(64) int32_t start[2][kRows];
  alignas(64) int32_t sums[kPixels * kSumStride];
};

// Direct: a stride-1 layer whose taps are whole rows of 64 bytes reads its tiles straight from a
// padded copy of the input. Pixel (oy, ox) becomes pixel oy * wp + ox of a virtual output as wide
// as the padded input, whose tap (kh, kw) is then a fixed shift of kh * dh * wp + kw * dw padded
// pixels: every tap's 16 pixels are equally spaced, however a tile crosses rows. The virtual
// pixels in the pad columns are computed and dropped (on 3x3 layers of width 56, 28, 14 and 7,
// 4%, 8%, 0% and 0% more tiles), against an im2col copy of every tap. Elsewhere the taps are
// gathered into im2col rows padded to 64 bytes, once per tile of pixels.
inline bool Direct(const Conv2dParams& p) {
  return p.stride_h == 1 && p.stride_w == 1 && Int8Channels(p.in_c / p.groups) % kRowBytes == 0;
}
// The direct walk's padded width.
inline int64_t PaddedWidth(const Conv2dParams& p) {
  return p.out_w + (p.kernel_w - 1) * p.dilation_w;
}
// Padded pixels of the direct walk's segment of output rows [y0, y1) of one image, with room for
// the last tile's reads past them.
inline int64_t SegmentPixels(const Conv2dParams& p, int y0, int y1) {
  const int64_t wp = PaddedWidth(p);
  return (y1 - y0 + (p.kernel_h - 1) * p.dilation_h) * wp + kPixels + wp;
}
inline int64_t Int8BlockBytes(const Conv2dParams& p) {
  return static_cast<int64_t>(p.kernel_h) * p.kernel_w * Int8Channels(p.in_c / p.groups) *
         kInt8OcBlock;
}

// Where the scratch of a call of at most `rows` rows goes: the padded input or im2col rows, two
// weight tiles, a pair of blocks' unpacked 4-bit weights, two pending steps; each 64-byte
// aligned.
struct ScratchLayout {
  size_t a, b, wpair, pending, total;
};
inline ScratchLayout LayoutFor(const Conv2dParams& p, int rows) {
  ScratchLayout l{};
  const int cg = p.in_c / p.groups;
  const int64_t pixel_bytes = static_cast<int64_t>(p.groups) * Int8Channels(cg);
  if (Direct(p)) {
    // A range of `rows` rows touches at most this many images, each segment no more than
    // SegmentPixels of its rows.
    const int64_t segments = std::min<int64_t>(rows, (rows - 1) / p.out_h + 2);
    const int64_t wp = PaddedWidth(p);
    const int64_t per_segment = (p.kernel_h - 1) * p.dilation_h * wp + kPixels + wp;
    l.a = static_cast<size_t>((rows * wp + segments * per_segment) * pixel_bytes);
    l.wpair = static_cast<size_t>(2 * Int8BlockBytes(p));
  } else {
    const int64_t chunks = (Int8Channels(cg) + kRowBytes - 1) / kRowBytes;
    l.a = static_cast<size_t>(kPixels * p.kernel_h * p.kernel_w * chunks * kRowBytes);
  }
  l.b = 2 * kRows * kRowBytes;
  l.pending = 2 * sizeof(Pending);
  l.total = l.a + l.b + l.wpair + l.pending;
  return l;
}

}  // namespace hybrid::kernels::amx_walk
#endif  // HYBRID_KERNELS_INT8_AMX_WALK_

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string lacks VNNI, which every such CPU has. AMX only for the
// tile configuration's intrinsics; the code runs them only where AmxActive says the CPU has it.
#pragma GCC target("avx512vnni,amx-tile,amx-int8")
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

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// One quad's 64 weight bytes from its 32 nibble bytes (see LoadWeights), as the s8 values 16 * w:
// the packed bytes in both halves, the low half shifted so that its low nibbles rise, the low
// nibbles masked off.
HWY_INLINE __m512i UnpackNibbleQuad(const uint8_t* nibbles) {
  const __m512i both =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(nibbles)));
  const __m512i shifts = _mm512_set_epi64(0, 0, 0, 0, 4, 4, 4, 4);
  return _mm512_and_si512(_mm512_sllv_epi64(both, shifts), _mm512_set1_epi8(-16));
}
#endif

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
    return VI32{UnpackNibbleQuad(bytes)};
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

#if HWY_TARGET == HWY_AVX2
// 4-bit weights on AVX2, MR pixels times one block: VPMADDUBSW's pairs of u8 x s8 products
// summed in 16 bits, widened to 32 every kNibbleRun quads. Without VNNI the 32-bit dot product
// costs VPMADDUBSW, VPMADDWD and VPADDD, two of them multiplies, for 32 products, and the sums
// of the first must not saturate (255 * 127 * 2 does); here the weights stay within [-8, 7], a
// pair within 255 * 8 * 2 = 4080 and kNibbleRun = 8 quads' pairs within 32640, so the 16-bit sums
// are exact and cost VPMADDUBSW and VPADDW per 32 products, one multiply (the widening adds
// one VPMADDWD per run of up to kNibbleRun quads of a tap).
constexpr int kNibbleRun = 8;

// acc += x * w in VPMADDUBSW's pairs. The add is asm so that it writes acc's own register: as
// intrinsics GCC put the 8 products of a quad in registers of their own, spilled two sums and
// copied the others back after every quad.
HWY_INLINE __m256i AddPairProducts(__m256i acc, __m256i x, __m256i w) {
  const __m256i p = _mm256_maddubs_epi16(x, w);
  asm("vpaddw %1, %0, %0" : "+x"(acc) : "x"(p));
  return acc;
}

template <int MR, class Src>
HWY_INLINE void NibbleTileAvx2(const Src& src, int taps, int quads, const int8_t* block,
                               const TileOutput* outs) {
  const DI32 d;
  // Nibble n as the s8 value it encodes.
  const __m256i to_s8 = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1, 0,
                                         1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  // The 32-bit sums live in memory: they change once per run, and the registers hold the 16-bit
  // sums, the weights and the constants. They start at -zero and then need not subtract it.
  HWY_ALIGN int32_t sums[MR][kInt8OcBlock];
  for (int j = 0; j < kVecs; ++j) {
    const VI32 start = hn::Neg(hn::LoadU(d, outs[0].zero + j * kLanes32));
    for (int m = 0; m < MR; ++m) hn::Store(start, d, sums[m] + j * kLanes32);
  }
  for (int t = 0; t < taps; ++t) {
    const uint8_t* x[MR];
    for (int m = 0; m < MR; ++m) x[m] = src.At(m, t);
    const auto* wt = reinterpret_cast<const __m256i*>(block + static_cast<int64_t>(t) * quads * 32);
    // A run's loop has no exit but its end: a widening inside it made GCC copy every
    // accumulator to another register after each quad.
    for (int k0 = 0; k0 < quads; k0 += kNibbleRun) {
      const int k1 = std::min(quads, k0 + kNibbleRun);
      __m256i acc[MR][2];
      for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_si256();
      for (int k = k0; k < k1; ++k) {
        // Bytes 0-31 of the quad (channels 0-7) in the low nibbles, bytes 32-63 in the high ones.
        const __m256i packed = _mm256_loadu_si256(wt + k);
        const __m256i w0 = _mm256_shuffle_epi8(to_s8, _mm256_and_si256(packed, low4));
        const __m256i w1 =
            _mm256_shuffle_epi8(to_s8, _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4));
        for (int m = 0; m < MR; ++m) {
          int32_t quad;
          std::memcpy(&quad, x[m] + 4 * k, 4);
          const __m256i xv = _mm256_set1_epi32(quad);
          acc[m][0] = AddPairProducts(acc[m][0], xv, w0);
          acc[m][1] = AddPairProducts(acc[m][1], xv, w1);
        }
      }
      for (int m = 0; m < MR; ++m) {
        for (int j = 0; j < 2; ++j) {
          auto* s32 = reinterpret_cast<__m256i*>(sums[m] + j * kLanes32);
          *s32 = _mm256_add_epi32(*s32, _mm256_madd_epi16(acc[m][j], ones));
        }
      }
    }
  }
  StoreBlocks(d, sums[0], kInt8OcBlock, MR, 0, outs[0].block, outs[0].px);
}
#endif

// MR pixels times NB blocks of 16 output channels: with two blocks per tile on AVX-512 each
// broadcast input quad feeds two multiply-accumulates.
template <int MR, int NB, bool kNibbles, class Src>
HWY_INLINE void Tile(const Src& src, int taps, int quads, const int8_t* block, int64_t block_bytes,
                     const TileOutput* outs) {
#if HWY_TARGET == HWY_AVX2
  if constexpr (kNibbles) {
    static_assert(NB == 1, "one block per tile on AVX2");
    (void)block_bytes;
    NibbleTileAvx2<MR>(src, taps, quads, block, outs);
    return;
  }
#endif
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

#if HWY_TARGET == HWY_AVX3_DL
// AMX: TDPBUSD multiplies a tile of 16 rows x 64 u8 (16 output pixels, 64 input bytes of one
// tap) by one of 16 rows x 64 s8 (16 quads x 16 output channels x 4), which is exactly a block
// of 16 quads in PackInt8ConvWeights' layout, into 16 x 16 i32 sums: 16384 MACs per instruction.
// A tile of 32 pixels x 2 blocks keeps four sum tiles, two input tiles and two weight tiles (all
// eight), so each tile loaded feeds two TDPBUSD. Tile loads run at full speed only from 64-byte
// aligned rows (about 6x slower otherwise, measured), so the tiles come from the scratch: a
// padded copy of the input (amx_walk::Direct) or im2col rows gathered once per tile of pixels
// for every block of output channels.
namespace amx {

using namespace amx_walk;  // NOLINT(google-build-using-namespace): the walk's own names

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// `rows` quads (of 32 nibble bytes) of 4-bit weights as 16 * w in s8, rows past them zero.
HWY_INLINE void UnpackNibbleRows(const uint8_t* src, int rows, int8_t* dst) {
  for (int r = 0; r < kRows; ++r) {
    const __m512i v = r < rows ? UnpackNibbleQuad(src + r * 32) : _mm512_setzero_si512();
    _mm512_store_si512(dst + r * kRowBytes, v);
  }
}

// `rows` rows of 64 weight bytes, rows past them zero: a tap's last chunk, whose rows past the
// tap belong to the next tap or lie past the buffer.
HWY_INLINE void CopyWeightRows(const int8_t* src, int rows, int8_t* dst) {
  for (int r = 0; r < kRows; ++r) {
    const __m512i v = r < rows ? _mm512_loadu_si512(src + r * kRowBytes) : _mm512_setzero_si512();
    _mm512_store_si512(dst + r * kRowBytes, v);
  }
}

// What every tile of a layer shares.
struct Layer {
  int taps, quads, chunks;
  int shift;         // 4 with nibbles: the sums are 16 times the true ones
  int8_t* bscratch;  // 2 KB: two blocks' weight tiles of one chunk
};

// Sums of up to 32 pixels x 2 blocks over every tap and chunk, left in tiles 0-3: block i's
// for pixels 0-15 in tile i, for pixels 16-31 in tile 2 + i. a[t] is pixel 0's first byte of
// tap t (pixel m at a[t] + m * a_stride, 64-byte aligned), wb[i] block i's packed weights,
// start[i] its 16 starting sums.
template <bool kTwoBlocks, bool kTwoRowTiles, bool kNibbles>
HWY_INLINE void TileSums(const Layer& l, const uint8_t* const* a, int64_t a_stride,
                         const int8_t* const* wb, const int32_t* const* start) {
  constexpr int64_t kQuadBytes = kNibbles ? kInt8OcBlock * 2 : kInt8OcBlock * 4;
  int8_t* const b0s = l.bscratch;
  int8_t* const b1s = l.bscratch + kRows * kRowBytes;
  // Tile instructions are asm that the compiler cannot see read memory.
  asm volatile("" ::: "memory");
  _tile_loadd(0, start[0], 0);
  if (kTwoBlocks) _tile_loadd(1, start[1], 0);
  if (kTwoRowTiles) {
    _tile_loadd(2, start[0], 0);
    if (kTwoBlocks) _tile_loadd(3, start[1], 0);
  }
  for (int t = 0; t < l.taps; ++t) {
    const uint8_t* arow = a[t];
    for (int c = 0; c < l.chunks; ++c, arow += kRowBytes) {
      const int rows = std::min(kRows, l.quads - c * kRows);
      const int64_t off = (static_cast<int64_t>(t) * l.quads + c * kRows) * kQuadBytes;
      const int8_t* b0 = wb[0] + off;
      const int8_t* b1 = kTwoBlocks ? wb[1] + off : nullptr;
      if (kNibbles) {
        UnpackNibbleRows(reinterpret_cast<const uint8_t*>(b0), rows, b0s);
        if (kTwoBlocks) UnpackNibbleRows(reinterpret_cast<const uint8_t*>(b1), rows, b1s);
        b0 = b0s;
        b1 = b1s;
        asm volatile("" ::: "memory");
      } else if (rows < kRows) {
        CopyWeightRows(b0, rows, b0s);
        if (kTwoBlocks) CopyWeightRows(b1, rows, b1s);
        b0 = b0s;
        b1 = b1s;
        asm volatile("" ::: "memory");
      }
      // Each load as late as its first use, so that it overlaps the TDPBUSD before it.
      _tile_loadd(4, arow, a_stride);
      _tile_loadd(6, b0, kRowBytes);
      _tile_dpbusd(0, 4, 6);
      if (kTwoBlocks) {
        _tile_loadd(7, b1, kRowBytes);
        _tile_dpbusd(1, 4, 7);
      }
      if (kTwoRowTiles) {
        _tile_loadd(5, arow + kRows * a_stride, a_stride);
        _tile_dpbusd(2, 5, 6);
        if (kTwoBlocks) _tile_dpbusd(3, 5, 7);
      }
      // Nor that they must read the scratch before the next chunk overwrites it.
      if (kNibbles) asm volatile("" ::: "memory");
    }
  }
}

// Tiles 0-3 of TileSums to `sums`: pixel m's sums at sums + m * kSumStride, block i's at + 16 i.
// Their asm clobbers memory, so no store after them moves before a tile load of the step.
template <bool kTwoBlocks, bool kTwoRowTiles>
HWY_INLINE void StoreSums(int32_t* sums) {
  constexpr int64_t kBytes = kSumStride * sizeof(int32_t);
  _tile_stored(0, sums, kBytes);
  if (kTwoBlocks) _tile_stored(1, sums + kRows, kBytes);
  if (kTwoRowTiles) {
    _tile_stored(2, sums + kRows * kSumStride, kBytes);
    if (kTwoBlocks) _tile_stored(3, sums + kRows * kSumStride + kRows, kBytes);
  }
}

// The output transform of a pending step.
HWY_INLINE void Finish(const Pending& pend, int shift) {
  const DI32 d;
  for (int m0 = 0; m0 < pend.mr;) {
    if (pend.px_out[m0] == nullptr) {
      ++m0;
      continue;
    }
    int m1 = m0 + 1;
    while (m1 < pend.mr && pend.px_out[m1] != nullptr) ++m1;
    for (int i = 0; i < pend.nblk; ++i) {
      StoreBlocks(d, pend.sums + m0 * kSumStride + i * kRows, kSumStride, m1 - m0, shift,
                  pend.outs[i], pend.px_out + m0);
    }
    m0 = m1;
  }
}

// fn(b, y0, y1) for each image b whose output rows [y0, y1) lie in rows [row_begin, row_end) of
// batch * out_h.
template <class Fn>
HWY_INLINE void ForEachImageRows(int row_begin, int row_end, int out_h, const Fn& fn) {
  for (int row = row_begin; row < row_end;) {
    const int y0 = row % out_h;
    const int y1 = std::min(out_h, y0 + (row_end - row));
    fn(static_cast<int64_t>(row / out_h), y0, y1);
    row += y1 - y0;
  }
}

// The blocks of a step: blocks nb and nb + 1 (if any) of group g.
struct Pair {
  int g, nb;
  const int8_t* wb[2];  // their weights: packed, or unpacked into scratch
};

// Steps in sequence, each one's output transform run after the next one's TDPBUSDs are issued,
// so that vector and tile work overlap. (Sliced between the chunks instead, to overlap more, it
// reloads each block's transform parameters per slice: slower, measured.)
class Stepper {
 public:
  Stepper(const Layer& l, const Conv2dParams& p, const ConvOutput& o, const int32_t* zero,
          Pending* pend)
      : l_(l), p_(p), o_(o), zero_(zero), pend_(pend) {}
  ~Stepper() { Flush(); }

  // One pair over one tile of mr pixels (tap t of pixel m at a[t] + m * a_stride).
  template <bool kNibbles>
  HWY_INLINE void Step(const Pair& pair, const uint8_t* const* a, int64_t a_stride, int mr,
                       unsigned char* const* px_out) {
    Pending& pd = pend_[cur_];
    const int out_cg = p_.out_c / p_.groups;
    const int blocks = (out_cg + kInt8OcBlock - 1) / kInt8OcBlock;
    pd.nblk = std::min(2, blocks - pair.nb);
    pd.mr = mr;
    std::memcpy(pd.px_out, px_out, sizeof(pd.px_out[0]) * mr);
    const int32_t* start[2] = {nullptr, nullptr};
    for (int i = 0; i < pd.nblk; ++i) {
      const int c0 = pair.g * out_cg + (pair.nb + i) * kInt8OcBlock;
      const int count = std::min(kInt8OcBlock, out_cg - (pair.nb + i) * kInt8OcBlock);
      pd.outs[i] = BlockOf(o_, p_.out_c, c0, count, &pd.tail[i]);
      const int32_t* z = BlockOf(zero_, c0, count, 0, pd.tail[i].zero);
      for (int j = 0; j < kRows; ++j) pd.start[i][j] = -z[j] * (1 << l_.shift);
      start[i] = pd.start[i];
    }
    const bool two_rows = mr > kRows;
    if (pd.nblk == 2) {
      if (two_rows) {
        TileSums<true, true, kNibbles>(l_, a, a_stride, pair.wb, start);
      } else {
        TileSums<true, false, kNibbles>(l_, a, a_stride, pair.wb, start);
      }
    } else if (two_rows) {
      TileSums<false, true, kNibbles>(l_, a, a_stride, pair.wb, start);
    } else {
      TileSums<false, false, kNibbles>(l_, a, a_stride, pair.wb, start);
    }
    Flush();
    if (pd.nblk == 2) {
      if (two_rows) {
        StoreSums<true, true>(pd.sums);
      } else {
        StoreSums<true, false>(pd.sums);
      }
    } else if (two_rows) {
      StoreSums<false, true>(pd.sums);
    } else {
      StoreSums<false, false>(pd.sums);
    }
    prev_ = &pd;
    cur_ ^= 1;
  }

  void Flush() {
    if (prev_ != nullptr) Finish(*prev_, l_.shift);
    prev_ = nullptr;
  }

 private:
  const Layer& l_;
  const Conv2dParams& p_;
  const ConvOutput& o_;
  const int32_t* zero_;
  Pending* pend_;
  Pending* prev_ = nullptr;
  int cur_ = 0;
};

// The 4-bit weights of blocks [nb, nb + count) of group g as the s8 values 16 * w in
// PackInt8ConvWeights' layout.
HWY_INLINE void UnpackBlocks(const uint8_t* packed, int64_t block_bytes_int8, int g, int blocks,
                             int nb, int count, int8_t* dst) {
  const uint8_t* src = packed + (static_cast<int64_t>(g) * blocks + nb) * (block_bytes_int8 / 2);
  for (int64_t q = 0; q < count * block_bytes_int8 / kRowBytes; ++q) {
    _mm512_store_si512(dst + q * kRowBytes, UnpackNibbleQuad(src + q * 32));
  }
}

// The convolution on AMX tiles; `scratch` as Int8ConvScratchBytes says. With kBitsIn the input
// is bitpacked (binary.h) and expands to bytes in the direct walk's copy (the only walk it takes):
// 2 for bit 0 (+1), 0 for bit 1 (-1), each group's words exactly its stored bytes.
template <bool kNibbles, bool kBitsIn = false>
void Conv2d(const Conv2dParams& params, const void* in_data, const uint8_t* pad_pixel,
            const int8_t* packed, const int32_t* zero, const int64_t* offsets, const ConvOutput& o,
            int row_begin, int row_end, void* scratch) {
  const auto* const in = static_cast<const uint8_t*>(in_data);
  const Conv2dParams p = params;
  const int cg = p.in_c / p.groups;
  const int stored = Int8Channels(cg);
  const int quads = stored / 4;
  const int chunks = (stored + kRowBytes - 1) / kRowBytes;
  const int taps = p.kernel_h * p.kernel_w;
  const int out_cg = p.out_c / p.groups;
  const int blocks = (out_cg + kInt8OcBlock - 1) / kInt8OcBlock;
  const int64_t block_bytes_int8 = static_cast<int64_t>(taps) * stored * kInt8OcBlock;
  const int64_t block_bytes = block_bytes_int8 / (kNibbles ? 2 : 1);
  const int64_t pixel_bytes = static_cast<int64_t>(p.groups) * stored;
  const int64_t image_bytes = static_cast<int64_t>(p.in_h) * p.in_w * pixel_bytes;
  const int64_t out_pixel_bytes = OutputPixelBytes(o, p.out_c);
  auto* const out_base = static_cast<unsigned char*>(o.data);
  const int64_t plane = static_cast<int64_t>(p.out_h) * p.out_w;
  const int span_h = (p.kernel_h - 1) * p.dilation_h;
  const bool direct = Direct(p);
  const int64_t wp = PaddedWidth(p);
  int64_t tiles_per_group = 0;
  ForEachImageRows(row_begin, row_end, p.out_h, [&](int64_t, int y0, int y1) {
    tiles_per_group += ((y1 - y0 - 1) * wp + p.out_w + kPixels - 1) / kPixels;
  });
  const int64_t im2col_stride = static_cast<int64_t>(taps) * chunks * kRowBytes;
  // The direct walk's loop order. Tiles outermost keep a tile's padded rows in L1 while every
  // pair's weights stream by; pairs outermost keep a pair's weights while the tiles stream by,
  // which wins where the weights outgrow L2 (3x3, 512 channels: 2.4 MB; measured 0.78x
  // -> 1.04-1.16x oneDNN int8). 4-bit weights unpacked a chunk at a time cost as much as the
  // TDPBUSDs they feed, so with 4 tiles or more to share the work each pair is unpacked once, pairs
  // outermost.
  const bool unpack_pairs = kNibbles && direct && tiles_per_group >= 4;
  const bool pair_outer =
      unpack_pairs || (!kNibbles && blocks * block_bytes_int8 >= (int64_t{1} << 20));

  const ScratchLayout layout = LayoutFor(p, row_end - row_begin);
  auto* const base = static_cast<uint8_t*>(scratch);
  uint8_t* const a = base;
  const Layer l{taps, quads, chunks, kNibbles ? 4 : 0, reinterpret_cast<int8_t*>(base + layout.a)};
  auto* const wpair = reinterpret_cast<int8_t*>(base + layout.a + layout.b);
  auto* const pend = reinterpret_cast<Pending*>(base + layout.a + layout.b + layout.wpair);

  TileConfig config;
  for (int i = 0; i < 8; ++i) {
    config.colsb[i] = kRowBytes;
    config.rows[i] = kRows;
  }
  asm volatile("" ::: "memory");
  _tile_loadconfig(&config);
  {
    Stepper stepper(l, p, o, zero, pend);
    const uint8_t* a_taps[kMaxInt8Taps];
    unsigned char* px_out[kPixels];
    auto pair_of = [&](int g, int nb) {
      Pair pr{g, nb, {nullptr, nullptr}};
      for (int i = 0; i < std::min(2, blocks - nb); ++i) {
        pr.wb[i] = packed + (static_cast<int64_t>(g) * blocks + nb + i) * block_bytes;
      }
      return pr;
    };
    if (direct) {
      int64_t tap_shift[kMaxInt8Taps];
      for (int kh = 0; kh < p.kernel_h; ++kh) {
        for (int kw = 0; kw < p.kernel_w; ++kw) {
          tap_shift[kh * p.kernel_w + kw] =
              (static_cast<int64_t>(kh) * p.dilation_h * wp + kw * p.dilation_w) * pixel_bytes;
        }
      }
      // Padded rows [y0, y1 + span_h) of each segment: input row y - pad_top, column x - pad_left.
      uint8_t* dst = a;
      // Bitpacked, a pixel's bytes are pixel_bytes / 64 words.
      const int64_t in_pixel_units = kBitsIn ? pixel_bytes / kRowBytes : pixel_bytes;
      const __m512i twos = _mm512_set1_epi8(2);
      ForEachImageRows(row_begin, row_end, p.out_h, [&](int64_t b, int y0, int y1) {
        uint8_t* seg = dst;
        for (int y = y0; y < y1 + span_h; ++y) {
          const int iy = y - p.pad_top;
          for (int64_t x = 0; x < wp; ++x, dst += pixel_bytes) {
            const int64_t ix = x - p.pad_left;
            const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
            const int64_t at =
                ((b * p.in_h + iy) * p.in_w + ix) * in_pixel_units;  // used only inside
            if (kBitsIn && inside) {
              const uint64_t* words = static_cast<const uint64_t*>(in_data) + at;
              for (int64_t k = 0; k < pixel_bytes; k += kRowBytes) {
                _mm512_store_si512(dst + k, _mm512_maskz_mov_epi8(~words[k / kRowBytes], twos));
              }
              continue;
            }
            const uint8_t* src = inside ? in + at : pad_pixel;
            for (int64_t k = 0; k < pixel_bytes; k += kRowBytes) {
              _mm512_store_si512(dst + k, _mm512_loadu_si512(src + k));
            }
          }
        }
        dst = seg + SegmentPixels(p, y0, y1) * pixel_bytes;
      });
      // fn(tile, mr) for every tile of every segment, px_out set for its pixels.
      auto for_each_tile = [&](auto fn) {
        const uint8_t* seg = a;
        ForEachImageRows(row_begin, row_end, p.out_h, [&](int64_t b, int y0, int y1) {
          const int64_t virtual_pixels = static_cast<int64_t>(y1 - y0 - 1) * wp + p.out_w;
          // Virtual pixel v0 + m is output row oy, column ox (no division: it costs as much
          // as a 1x1 layer's tile).
          int64_t oy = y0, ox = 0;
          for (int64_t v0 = 0; v0 < virtual_pixels; v0 += kPixels) {
            const int mr = static_cast<int>(std::min<int64_t>(kPixels, virtual_pixels - v0));
            for (int m = 0; m < mr; ++m) {
              px_out[m] = ox < p.out_w
                              ? out_base + ((b * p.out_h + oy) * p.out_w + ox) * out_pixel_bytes
                              : nullptr;
              if (++ox == wp) ox = 0, ++oy;
            }
            fn(seg + v0 * pixel_bytes, mr);
          }
          seg += SegmentPixels(p, y0, y1) * pixel_bytes;
        });
      };
      auto set_taps = [&](const uint8_t* tile, int g) {
        for (int t = 0; t < taps; ++t) a_taps[t] = tile + g * stored + tap_shift[t];
      };
      for (int g = 0; g < p.groups; ++g) {
        if (!pair_outer) {
          for_each_tile([&](const uint8_t* tile, int mr) {
            set_taps(tile, g);
            for (int nb = 0; nb < blocks; nb += 2) {
              stepper.Step<kNibbles>(pair_of(g, nb), a_taps, pixel_bytes, mr, px_out);
            }
          });
          continue;
        }
        for (int nb = 0; nb < blocks; nb += 2) {
          Pair pr = pair_of(g, nb);
          if (unpack_pairs) {
            // This overwrites the previous pair's weights, which every step issued before has
            // loaded into its tiles already (tile stores order the compiler, see StoreSums).
            const int count = std::min(2, blocks - nb);
            UnpackBlocks(reinterpret_cast<const uint8_t*>(packed), block_bytes_int8, g, blocks, nb,
                         count, wpair);
            for (int i = 0; i < count; ++i) pr.wb[i] = wpair + i * block_bytes_int8;
            for_each_tile([&](const uint8_t* tile, int mr) {
              set_taps(tile, g);
              stepper.Step<false>(pr, a_taps, pixel_bytes, mr, px_out);
            });
          } else {
            for_each_tile([&](const uint8_t* tile, int mr) {
              set_taps(tile, g);
              stepper.Step<kNibbles>(pr, a_taps, pixel_bytes, mr, px_out);
            });
          }
        }
      }
    } else if constexpr (!kBitsIn) {
      // The gather copies whole rows of 64 bytes, then a tap's last bytes through a mask that
      // reads no further and zeroes the rest of the row (which meets zero weights, or none).
      const int full_chunks = stored / kRowBytes;
      const int tail_bytes = stored % kRowBytes;
      const __mmask64 tail_mask = (__mmask64{1} << tail_bytes) - 1;
      for (int t = 0; t < taps; ++t) a_taps[t] = a + static_cast<int64_t>(t) * chunks * kRowBytes;
      const int64_t px_begin = static_cast<int64_t>(row_begin) * p.out_w;
      const int64_t px_end = static_cast<int64_t>(row_end) * p.out_w;
      for (int g = 0; g < p.groups; ++g) {
        for (int64_t px = px_begin; px < px_end; px += kPixels) {
          const int mr = static_cast<int>(std::min<int64_t>(kPixels, px_end - px));
          // The pending transform reads no im2col rows, so the gather may overwrite them.
          for (int m = 0; m < mr; ++m) {
            const int64_t q = px + m;
            const int64_t b = q / plane, r = q % plane;
            const int64_t* offs = offsets + r * taps;
            const uint8_t* image = in + b * image_bytes + g * stored;
            uint8_t* row = a + m * im2col_stride;
            for (int t = 0; t < taps; ++t) {
              const uint8_t* src = offs[t] >= 0 ? image + offs[t] : pad_pixel + g * stored;
              for (int c = 0; c < full_chunks; ++c, row += kRowBytes) {
                _mm512_store_si512(row, _mm512_loadu_si512(src + c * kRowBytes));
              }
              if (tail_mask != 0) {
                _mm512_store_si512(row,
                                   _mm512_maskz_loadu_epi8(tail_mask, src + stored - tail_bytes));
                row += kRowBytes;
              }
            }
            px_out[m] = out_base + q * out_pixel_bytes;
          }
          for (int nb = 0; nb < blocks; nb += 2) {
            stepper.Step<kNibbles>(pair_of(g, nb), a_taps, im2col_stride, mr, px_out);
          }
        }
      }
    }
  }
  _tile_release();
}

}  // namespace amx
#endif  // HWY_TARGET == HWY_AVX3_DL

template <bool kNibbles>
void IntConv2d(const Conv2dParams& params, const uint8_t* in, const uint8_t* pad_pixel,
               const int8_t* packed, const int32_t* zero, const int64_t* offsets,
               const ConvOutput& o, int row_begin, int row_end, void* scratch) {
#if HWY_TARGET == HWY_AVX3_DL
  if (scratch != nullptr && AmxActive() && row_begin < row_end) {
    amx::Conv2d<kNibbles>(params, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end,
                          scratch);
    return;
  }
#else
  (void)scratch;
#endif
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
  const InteriorTiles interior_tiles(p);
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
        const bool interior = interior_tiles.Interior(oy, ox, mr);
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
                    const ConvOutput& o, int row_begin, int row_end, void* scratch) {
  IntConv2d<false>(p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end, scratch);
}

void Int4Conv2dImpl(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                    const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                    const ConvOutput& o, int row_begin, int row_end, void* scratch) {
  IntConv2d<true>(p, in, pad_pixel, reinterpret_cast<const int8_t*>(packed), zero, offsets, o,
                  row_begin, row_end, scratch);
}

void BinaryConv2dOnTilesImpl(const Conv2dParams& p, const uint64_t* in, const uint8_t* pad_pixel,
                             const int8_t* packed, const int32_t* zero, const ConvOutput& o,
                             int row_begin, int row_end, void* scratch) {
#if HWY_TARGET == HWY_AVX3_DL
  if (scratch != nullptr && AmxActive() && amx_walk::Direct(p)) {
    if (row_begin < row_end) {
      amx::Conv2d<false, true>(p, in, pad_pixel, packed, zero, nullptr, o, row_begin, row_end,
                               scratch);
    }
    return;
  }
#else
  (void)p, (void)in, (void)pad_pixel, (void)packed, (void)zero, (void)o, (void)row_begin;
  (void)row_end, (void)scratch;
#endif
  HWY_ABORT("BinaryConv2dOnTiles called where BinaryConvOnTiles is false, or without scratch");
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hybrid::kernels {

HWY_EXPORT(QuantizeU8Impl);
HWY_EXPORT(Int8Conv2dImpl);
HWY_EXPORT(Int4Conv2dImpl);
HWY_EXPORT(BinaryConv2dOnTilesImpl);

void Int4Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end, void* scratch) {
  HWY_DYNAMIC_DISPATCH(Int4Conv2dImpl)
  (p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end, scratch);
}

namespace {
// True when the integer convolutions dispatch to their AMX code.
bool OnAmx() { return CurrentTarget() == "avx3_amx"; }
}  // namespace

// On AVX2 the 4-bit weights' kernel sums in 16 bits (NibbleTileAvx2) and beats the bit planes,
// whose popcounts AVX2 has no instruction for.
bool Bit2OnIntegerKernel() { return OnAmx() || CurrentTarget() == "avx2"; }

bool BinaryConvOnTiles(const Conv2dParams& p) {
  // Beyond 1 MiB the s8 weights, 8 times the bits, stream from L3 while XOR-popcount's stay in
  // L2: 3x3 with 512 channels ran at 0.90x of it on tiles, the other layers 1.05-1.48x
  // (bench/README.md).
  return OnAmx() && Int8ConvSupported(p) && amx_walk::Direct(p) &&
         (p.pad_value == 0.f || p.pad_value == 1.f) &&
         Int8ConvPackedWeightsBytes(p) < (size_t{1} << 20);
}

void BinaryOnTilesPadPixel(const Conv2dParams& p, uint8_t* pad) {
  const size_t bytes = static_cast<size_t>(p.groups) * Int8Channels(p.in_c / p.groups);
  std::memset(pad, p.pad_value == 1.f ? 2 : 1, bytes);
}

void PackBinaryOnTilesWeights(const Conv2dParams& p, const float* weights, int8_t* packed,
                              int32_t* zero) {
  const size_t n = static_cast<size_t>(p.out_c) * p.kernel_h * p.kernel_w * (p.in_c / p.groups);
  std::vector<int8_t> signs(n);
  for (size_t i = 0; i < n; ++i) signs[i] = weights[i] < 0.f ? -1 : 1;
  PackInt8ConvWeights(p, signs.data(), packed);
  Int8ConvWeightSums(p, signs.data(), zero);
}

void BinaryConv2dOnTiles(const Conv2dParams& p, const uint64_t* in, const uint8_t* pad_pixel,
                         const int8_t* packed, const int32_t* zero, const ConvOutput& o,
                         int row_begin, int row_end, void* scratch) {
  HWY_DYNAMIC_DISPATCH(BinaryConv2dOnTilesImpl)
  (p, in, pad_pixel, packed, zero, o, row_begin, row_end, scratch);
}

size_t Int8ConvScratchBytes(const Conv2dParams& p, int rows) {
  if (!OnAmx() || rows <= 0) return 0;
  return amx_walk::LayoutFor(p, rows).total;
}

Int8ConvRowSplit SplitInt8ConvRows(const Conv2dParams& p, int threads) {
  const int rows = p.batch * p.out_h;
  const int per_range = (rows + std::max(1, threads) - 1) / std::max(1, threads);
  Int8ConvRowSplit split;
  split.scratch_bytes = (Int8ConvScratchBytes(p, per_range) + 63) / 64 * 64;
  split.rows_per_call = split.scratch_bytes > 0 ? per_range : 1;
  split.calls = (rows + split.rows_per_call - 1) / split.rows_per_call;
  return split;
}

void QuantizeU8(int64_t pixels, int channels, int groups, const ActivationQuant& q, const float* in,
                uint8_t* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeU8Impl)(pixels, channels, groups, q, in, out);
}

void Int8Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const int8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end, void* scratch) {
  HWY_DYNAMIC_DISPATCH(Int8Conv2dImpl)
  (p, in, pad_pixel, packed, zero, offsets, o, row_begin, row_end, scratch);
}

}  // namespace hybrid::kernels
#endif  // HWY_ONCE
