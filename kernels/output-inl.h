// The output transforms of kernels/output.h on vectors, for each Highway target: included by
// every kernel source after hwy/highway.h (the per-target include guard is Highway's pattern).
#if defined(HYBRID_KERNELS_OUTPUT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HYBRID_KERNELS_OUTPUT_INL_H_
#undef HYBRID_KERNELS_OUTPUT_INL_H_
#else
#define HYBRID_KERNELS_OUTPUT_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "kernels/output.h"

HWY_BEFORE_NAMESPACE();
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The parameters of TransformOne for the channels at lane offset j of every array of an
// OutputTransform, loaded once so that the pixels of a tile share them.
template <class DF>
struct TransformLanes {
  hn::Vec<DF> mul, bias, bn_mul, bn_add, slope, act_min, act_max;
  bool has_bias, has_bn;
  Activation act;

  HWY_INLINE TransformLanes(DF df, const OutputTransform& o, int j)
      : mul(hn::LoadU(df, o.mul + j)),
        bias(o.bias != nullptr ? hn::LoadU(df, o.bias + j) : hn::Zero(df)),
        bn_mul(o.bn_mul != nullptr ? hn::LoadU(df, o.bn_mul + j) : hn::Zero(df)),
        bn_add(o.bn_mul != nullptr ? hn::LoadU(df, o.bn_add + j) : hn::Zero(df)),
        slope(o.act == Activation::kPrelu ? hn::LoadU(df, o.slope + j) : hn::Zero(df)),
        act_min(hn::Set(df, o.act_min)),
        act_max(hn::Set(df, o.act_max)),
        has_bias(o.bias != nullptr),
        has_bn(o.bn_mul != nullptr),
        act(o.act) {}

  // TransformOne on the lanes of `d`: the same roundings in the same order.
  template <class DI>
  HWY_INLINE hn::Vec<DF> Apply(DI /*di*/, hn::Vec<DI> d) const {
    const DF df;
    auto y = hn::Mul(hn::ConvertTo(df, d), mul);
    if (has_bias) y = hn::Add(y, bias);
    if (has_bn) y = hn::Add(hn::Mul(y, bn_mul), bn_add);
    switch (act) {
      case Activation::kNone:
        break;
      case Activation::kRelu:
        y = hn::IfThenElseZero(hn::Gt(y, hn::Zero(df)), y);
        break;
      case Activation::kHardtanh:
        y = hn::IfThenElse(hn::Lt(y, act_min), act_min, y);
        y = hn::IfThenElse(hn::Lt(act_max, y), act_max, y);
        break;
      case Activation::kPrelu:
        y = hn::IfThenElse(hn::Ge(y, hn::Zero(df)), y, hn::Mul(y, slope));
        break;
    }
    return y;
  }
};

// TransformOne on the lanes of `d`, for the channels whose parameters start at lane offset j of
// every array of `o`.
template <class DI>
HWY_INLINE hn::Vec<hn::Rebind<float, DI>> TransformVec(DI di, hn::Vec<DI> d,
                                                       const OutputTransform& o, int j) {
  const hn::Rebind<float, DI> df;
  return TransformLanes<decltype(df)>(df, o, j).Apply(di, d);
}

// The lanes of a mask as bits, lane i at bit i.
template <class DI>
HWY_INLINE uint64_t LaneBits(DI di, hn::Mask<DI> mask) {
  uint8_t bytes[8] = {};
  hn::StoreMaskBits(di, mask, bytes);
  uint64_t bits = 0;
  std::memcpy(&bits, bytes, sizeof(bits));
  const size_t n = hn::Lanes(di);
  return n >= 64 ? bits : bits & ((uint64_t{1} << n) - 1);
}

// Bits (d < threshold[j + lane]) of the lanes of `d`, lane i at bit i.
template <class DI>
HWY_INLINE uint64_t ThresholdBits(DI di, hn::Vec<DI> d, const int32_t* threshold) {
  return LaneBits(di, hn::Lt(d, hn::LoadU(di, threshold)));
}

// The counts v of Planes2Thresholds for the lanes of `d`, the block's channels from j on, whose
// thresholds are t0, t1, t2: as t0 <= t1 <= t2, v's high bit is [d >= t1] and its low bit the
// parity of the three. Added inverted (Highway has no integer >=: [d < t] instead) to the
// planes' bits from bit j on; StoreThresholdPlanes inverts them back.
template <class DI>
HWY_INLINE void AddThresholdPlanes(DI di, hn::Vec<DI> d, hn::Vec<DI> t0, hn::Vec<DI> t1,
                                   hn::Vec<DI> t2, int j, uint64_t* low, uint64_t* high) {
  const uint64_t l1 = LaneBits(di, hn::Lt(d, t1));
  *low |= (LaneBits(di, hn::Lt(d, t0)) ^ l1 ^ LaneBits(di, hn::Lt(d, t2))) << j;
  *high |= l1 << j;
}

// ConvertTo for floats known to lie within int32's range: on x86 one truncating conversion,
// without the fix-up for overflow that ConvertTo adds (four more operations per vector).
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> ConvertInRange(DF df, hn::Vec<DF> v) {
  const hn::Rebind<int32_t, DF> di;
  (void)df;
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if constexpr (sizeof(v.raw) == 64) {
    return hn::Vec<decltype(di)>{_mm512_cvttps_epi32(v.raw)};
  }
#elif HWY_TARGET == HWY_AVX2
  if constexpr (sizeof(v.raw) == 32) {
    return hn::Vec<decltype(di)>{_mm256_cvttps_epi32(v.raw)};
  }
#endif
  return hn::ConvertTo(di, v);
}

// The constants of QuantizeVec as vectors, made once per block.
template <class DF>
struct QuantizeLanes {
  hn::Vec<DF> scale, stored_zero, stored_min, stored_max;

  // The offset is added in float, before the clamp: exact, as every operand is an integer below
  // 2^24 in magnitude, or the sum lies beyond the clamp either way.
  HWY_INLINE QuantizeLanes(DF df, const ActivationQuant& q)
      : scale(hn::Set(df, q.scale)),
        stored_zero(hn::Set(df, static_cast<float>(q.zero_point + q.offset))),
        stored_min(hn::Set(df, static_cast<float>(q.qmin + q.offset))),
        stored_max(hn::Set(df, static_cast<float>(q.qmax + q.offset))) {}

  // The values an integer layer stores for floats y, as QuantizeU8 computes them (division, not
  // a reciprocal multiply, to round as the reference does), in i32 lanes.
  HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> Apply(hn::Vec<DF> y) const {
    auto v = hn::Add(hn::Round(hn::Div(y, scale)), stored_zero);
    v = hn::Min(hn::Max(v, stored_min), stored_max);
    return ConvertInRange(DF(), v);
  }
};

// The bytes of stored values (each within [0, 255]): on AVX-512 one VPMOVDB. (Highway 1.0.3's
// TruncateTo to u8 on AVX3_DL permutes 32-bit lanes where it means bytes.)
template <class D8, class VI>
HWY_INLINE hn::Vec<D8> StoredBytes(D8 d8, VI v) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  if constexpr (sizeof(v.raw) == 64) {
    return hn::Vec<D8>{_mm512_cvtepi32_epi8(v.raw)};
  }
#endif
  return hn::DemoteTo(d8, v);
}

template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> QuantizeVec(DF df, hn::Vec<DF> y,
                                                        const ActivationQuant& q) {
  return QuantizeLanes<DF>(df, q).Apply(y);
}

HWY_INLINE void StoreBits16(uint64_t bits, unsigned char* dst) {
  const auto b16 = static_cast<uint16_t>(bits);  // little-endian: the word's bits in order
  std::memcpy(dst, &b16, sizeof(b16));
}

// Writes a block's two planes, the low one at dst and the high one 8 bytes on, keeping the bits
// of channels past `count` clear.
HWY_INLINE void StorePlanes16(uint64_t low, uint64_t high, int count, unsigned char* dst) {
  const uint64_t real = (uint64_t{1} << count) - 1;
  StoreBits16(low & real, dst);
  StoreBits16(high & real, dst + 8);
}

// Writes a block's two planes from AddThresholdPlanes' inverted bits: flipped channels store
// 3 - v (both bits inverted once more).
HWY_INLINE void StoreThresholdPlanes(uint64_t low, uint64_t high, uint64_t flip, int count,
                                     unsigned char* dst) {
  StorePlanes16(low ^ ~flip, high ^ ~flip, count, dst);
}

// The two bit planes of 2-bit outputs through the float transform: u = stored - offset - qmin in
// [0, 3], as two bits.
template <class DI>
struct PlaneBits {
  hn::Vec<DI> base, one, two;

  HWY_INLINE PlaneBits(DI di, const ActivationQuant& q)
      : base(hn::Set(di, q.offset + q.qmin)), one(hn::Set(di, 1)), two(hn::Set(di, 2)) {}

  // Adds the bits of the stored values `stored` of the channels from j on to low and high.
  HWY_INLINE void Add(hn::Vec<DI> stored, int j, uint64_t* low, uint64_t* high) const {
    const DI di;
    const auto u = hn::Sub(stored, base);
    *low |= LaneBits(di, hn::Eq(hn::And(u, one), one)) << j;
    *high |= LaneBits(di, hn::Eq(hn::And(u, two), two)) << j;
  }
};

// Writes one output pixel's block from its channels' sums dot[0, kOutputBlock) (aligned) to
// `dst`, the block's first byte in the pixel: what StoreOutputRef writes channel by channel.
template <class DI>
HWY_INLINE void StoreBlock(DI di, const int32_t* dot, const BlockOutput& b, unsigned char* dst) {
  const int n = static_cast<int>(hn::Lanes(di));
  const hn::Rebind<float, DI> df;
  switch (b.kind) {
    case OutputKind::kFloat: {
      HWY_ALIGN float partial[kOutputBlock];
      float* y = b.count == kOutputBlock ? reinterpret_cast<float*>(dst) : partial;
      for (int j = 0; j < kOutputBlock; j += n) {
        hn::StoreU(TransformVec(di, hn::Load(di, dot + j), b.transform, j), df, y + j);
      }
      if (y == partial) std::memcpy(dst, partial, sizeof(float) * b.count);
      break;
    }
    case OutputKind::kBits: {
      uint64_t bits = 0;
      for (int j = 0; j < kOutputBlock; j += n) {
        bits |= ThresholdBits(di, hn::Load(di, dot + j), b.threshold + j) << j;
      }
      StoreBits16(bits, dst);
      break;
    }
    case OutputKind::kU8: {
      const hn::Rebind<uint8_t, DI> d8;
      // A whole block stores straight to dst: a memcpy of a run-time count is a library call,
      // which costs as much as the block's transform.
      HWY_ALIGN uint8_t partial[kOutputBlock];
      uint8_t* bytes = b.count == kOutputBlock ? dst : partial;
      for (int j = 0; j < kOutputBlock; j += n) {
        const auto y = TransformVec(di, hn::Load(di, dot + j), b.transform, j);
        hn::StoreU(StoredBytes(d8, QuantizeVec(df, y, b.quant)), d8, bytes + j);
      }
      if (bytes == partial) std::memcpy(dst, partial, b.count);
      break;
    }
    case OutputKind::kPlanes2: {
      if (b.plane_threshold[0] != nullptr) {
        uint64_t low = 0, high = 0;
        for (int j = 0; j < kOutputBlock; j += n) {
          AddThresholdPlanes(di, hn::Load(di, dot + j), hn::LoadU(di, b.plane_threshold[0] + j),
                             hn::LoadU(di, b.plane_threshold[1] + j),
                             hn::LoadU(di, b.plane_threshold[2] + j), j, &low, &high);
        }
        StoreThresholdPlanes(low, high, b.plane_flip, b.count, dst);
        break;
      }
      // u = stored - offset - qmin in [0, 3], as two bits. Written out, not through PlaneBits:
      // with PlaneBits here GCC made the bit-serial kernel on 1x1_c256_h14 0.8x as fast.
      const auto base = hn::Set(di, b.quant.offset + b.quant.qmin);
      const auto one = hn::Set(di, 1), two = hn::Set(di, 2);
      uint64_t low = 0, high = 0;
      for (int j = 0; j < kOutputBlock; j += n) {
        const auto y = TransformVec(di, hn::Load(di, dot + j), b.transform, j);
        const auto u = hn::Sub(QuantizeVec(df, y, b.quant), base);
        uint8_t bytes[8] = {};
        hn::StoreMaskBits(di, hn::Eq(hn::And(u, one), one), bytes);
        uint64_t m0 = 0, m1 = 0;
        std::memcpy(&m0, bytes, sizeof(m0));
        hn::StoreMaskBits(di, hn::Eq(hn::And(u, two), two), bytes);
        std::memcpy(&m1, bytes, sizeof(m1));
        const uint64_t lanes = n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
        low |= (m0 & lanes) << j;
        high |= (m1 & lanes) << j;
      }
      // Channels past b.count quantize their zero parameters: keep their bits clear.
      StorePlanes16(low, high, b.count, dst);
      break;
    }
  }
}

// StoreBlock for `pixels` pixels at once: pixel m's sums, times 2^shift, at sums + m * stride,
// its block at dst[m] + b.offset. Float and u8 blocks load their parameters once for all the
// pixels; bits compare the sums where they lie (StoreBlock writes every bit of the block, a
// partial one's thresholds keep the missing channels' bits clear).
template <class DI>
HWY_INLINE void StoreBlocks(DI di, const int32_t* sums, int64_t stride, int pixels, int shift,
                            const BlockOutput& b, unsigned char* const* dst) {
  const int n = static_cast<int>(hn::Lanes(di));
  const hn::Rebind<float, DI> df;
  if (b.kind == OutputKind::kBits) {
    for (int m = 0; m < pixels; ++m) {
      uint64_t bits = 0;
      for (int j = 0; j < kOutputBlock; j += n) {
        const auto dot = hn::ShiftRightSame(hn::LoadU(di, sums + m * stride + j), shift);
        bits |= ThresholdBits(di, dot, b.threshold + j) << j;
      }
      StoreBits16(bits, dst[m] + b.offset);
    }
    return;
  }
  if (b.kind == OutputKind::kPlanes2) {
    // The parameters loaded once per vector of channels for up to kChunk pixels, as for float and
    // u8 blocks: per pixel through StoreBlock the transform took about an eighth of the lookup
    // kernel's time on 3x3_c128_h28 (perf), and more on 1x1 layers.
    constexpr int kChunk = 16;
    if (b.plane_threshold[0] != nullptr) {
      for (int m0 = 0; m0 < pixels; m0 += kChunk) {
        const int count = std::min(kChunk, pixels - m0);
        uint64_t low[kChunk] = {}, high[kChunk] = {};
        for (int j = 0; j < kOutputBlock; j += n) {
          const auto t0 = hn::LoadU(di, b.plane_threshold[0] + j);
          const auto t1 = hn::LoadU(di, b.plane_threshold[1] + j);
          const auto t2 = hn::LoadU(di, b.plane_threshold[2] + j);
          for (int m = 0; m < count; ++m) {
            const auto dot = hn::ShiftRightSame(hn::LoadU(di, sums + (m0 + m) * stride + j), shift);
            AddThresholdPlanes(di, dot, t0, t1, t2, j, &low[m], &high[m]);
          }
        }
        for (int m = 0; m < count; ++m) {
          StoreThresholdPlanes(low[m], high[m], b.plane_flip, b.count, dst[m0 + m] + b.offset);
        }
      }
      return;
    }
    const PlaneBits<DI> planes(di, b.quant);
    for (int m0 = 0; m0 < pixels; m0 += kChunk) {
      const int count = std::min(kChunk, pixels - m0);
      uint64_t low[kChunk] = {}, high[kChunk] = {};
      for (int j = 0; j < kOutputBlock; j += n) {
        const TransformLanes<decltype(df)> t(df, b.transform, j);
        const QuantizeLanes<decltype(df)> q(df, b.quant);
        for (int m = 0; m < count; ++m) {
          const auto dot = hn::ShiftRightSame(hn::LoadU(di, sums + (m0 + m) * stride + j), shift);
          planes.Add(q.Apply(t.Apply(di, dot)), j, &low[m], &high[m]);
        }
      }
      // Channels past b.count quantize their zero parameters: their bits are cleared.
      for (int m = 0; m < count; ++m)
        StorePlanes16(low[m], high[m], b.count, dst[m0 + m] + b.offset);
    }
    return;
  }
  if (b.count != kOutputBlock || (b.kind != OutputKind::kFloat && b.kind != OutputKind::kU8)) {
    for (int m = 0; m < pixels; ++m) {
      HWY_ALIGN int32_t dot[kOutputBlock];
      for (int j = 0; j < kOutputBlock; j += n) {
        hn::Store(hn::ShiftRightSame(hn::LoadU(di, sums + m * stride + j), shift), di, dot + j);
      }
      StoreBlock(di, dot, b, dst[m] + b.offset);
    }
    return;
  }
  const hn::Rebind<uint8_t, DI> d8;
  for (int j = 0; j < kOutputBlock; j += n) {
    const TransformLanes<decltype(df)> t(df, b.transform, j);
    if (b.kind == OutputKind::kFloat) {
      for (int m = 0; m < pixels; ++m) {
        const auto dot = hn::ShiftRightSame(hn::LoadU(di, sums + m * stride + j), shift);
        hn::StoreU(t.Apply(di, dot), df, reinterpret_cast<float*>(dst[m] + b.offset) + j);
      }
    } else {
      const QuantizeLanes<decltype(df)> q(df, b.quant);
      for (int m = 0; m < pixels; ++m) {
        const auto dot = hn::ShiftRightSame(hn::LoadU(di, sums + m * stride + j), shift);
        hn::StoreU(StoredBytes(d8, q.Apply(t.Apply(di, dot))), d8, dst[m] + b.offset + j);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#endif  // HYBRID_KERNELS_OUTPUT_INL_H_
