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

}  // namespace HWY_NAMESPACE
}  // namespace hybrid::kernels
HWY_AFTER_NAMESPACE();

#endif  // HYBRID_KERNELS_OUTPUT_INL_H_
