// The output transforms of kernels/output.h on vectors, for each Highway target: included by
// every kernel source after hwy/highway.h (the per-target include guard is Highway's pattern).
#if defined(HYBRID_KERNELS_OUTPUT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HYBRID_KERNELS_OUTPUT_INL_H_
#undef HYBRID_KERNELS_OUTPUT_INL_H_
#else
#define HYBRID_KERNELS_OUTPUT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstring>

#include "kernels/output.h"

HWY_BEFORE_NAMESPACE();
namespace hybrid::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// TransformOne on the lanes of `d`, for the channels whose parameters start at lane offset j of
// every array of `o`; the same roundings in the same order.
template <class DI>
HWY_INLINE hn::Vec<hn::Rebind<float, DI>> TransformVec(DI di, hn::Vec<DI> d,
                                                       const OutputTransform& o, int j) {
  const hn::Rebind<float, DI> df;
  (void)di;
  auto y = hn::Mul(hn::ConvertTo(df, d), hn::LoadU(df, o.mul + j));
  if (o.bias != nullptr) y = hn::Add(y, hn::LoadU(df, o.bias + j));
  if (o.bn_mul != nullptr) {
    y = hn::Mul(y, hn::LoadU(df, o.bn_mul + j));
    y = hn::Add(y, hn::LoadU(df, o.bn_add + j));
  }
  switch (o.act) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      y = hn::IfThenElseZero(hn::Gt(y, hn::Zero(df)), y);
      break;
    case Activation::kHardtanh: {
      const auto lo = hn::Set(df, o.act_min), hi = hn::Set(df, o.act_max);
      y = hn::IfThenElse(hn::Lt(y, lo), lo, y);
      y = hn::IfThenElse(hn::Lt(hi, y), hi, y);
      break;
    }
    case Activation::kPrelu:
      y = hn::IfThenElse(hn::Ge(y, hn::Zero(df)), y, hn::Mul(y, hn::LoadU(df, o.slope + j)));
      break;
  }
  return y;
}

// Bits (d < threshold[j + lane]) of the lanes of `d`, lane i at bit i.
template <class DI>
HWY_INLINE uint64_t ThresholdBits(DI di, hn::Vec<DI> d, const int32_t* threshold) {
  uint8_t bytes[8] = {};
  hn::StoreMaskBits(di, hn::Lt(d, hn::LoadU(di, threshold)), bytes);
  uint64_t bits = 0;
  std::memcpy(&bits, bytes, sizeof(bits));
  const size_t n = hn::Lanes(di);
  return n >= 64 ? bits : bits & ((uint64_t{1} << n) - 1);
}

// The values an integer layer stores for floats y, as QuantizeU8 computes them (division, not a
// reciprocal multiply, to round as the reference does), in i32 lanes.
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> QuantizeVec(DF df, hn::Vec<DF> y,
                                                        const ActivationQuant& q) {
  const hn::Rebind<int32_t, DF> di;
  auto v = hn::Add(hn::Round(hn::Div(y, hn::Set(df, q.scale))),
                   hn::Set(df, static_cast<float>(q.zero_point)));
  v = hn::Min(hn::Max(v, hn::Set(df, static_cast<float>(q.qmin))),
              hn::Set(df, static_cast<float>(q.qmax)));
  return hn::Add(hn::ConvertTo(di, v), hn::Set(di, q.offset));
}

HWY_INLINE void StoreBits16(uint64_t bits, unsigned char* dst) {
  const auto b16 = static_cast<uint16_t>(bits);  // little-endian: the word's bits in order
  std::memcpy(dst, &b16, sizeof(b16));
}

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
      HWY_ALIGN uint8_t bytes[kOutputBlock];
      for (int j = 0; j < kOutputBlock; j += n) {
        const auto y = TransformVec(di, hn::Load(di, dot + j), b.transform, j);
        hn::StoreU(hn::DemoteTo(d8, QuantizeVec(df, y, b.quant)), d8, bytes + j);
      }
      std::memcpy(dst, bytes, b.count);
      break;
    }
    case OutputKind::kPlanes2: {
      // u = stored - offset - qmin in [0, 3], as two bits.
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
      const uint64_t real = (uint64_t{1} << b.count) - 1;
      StoreBits16(low & real, dst);
      StoreBits16(high & real, dst + 8);
      break;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#endif  // HYBRID_KERNELS_OUTPUT_INL_H_
