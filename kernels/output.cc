#include "kernels/output.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "kernels/binary.h"
#include "kernels/int8.h"

namespace hybrid::kernels {

int64_t OutputPixelBytes(const ConvOutput& o, int out_c) {
  const int cg = out_c / o.groups;
  switch (o.kind) {
    case OutputKind::kFloat:
      return static_cast<int64_t>(out_c) * sizeof(float);
    case OutputKind::kBits:
      return static_cast<int64_t>(o.groups) * PackedWords(cg) * 8;
    case OutputKind::kU8:
      return static_cast<int64_t>(o.groups) * Int8Channels(cg);
    case OutputKind::kPlanes2:
      return static_cast<int64_t>(o.groups) * PackedWords(cg) * 16;
  }
  return 0;
}

int64_t OutputChannelOffset(const ConvOutput& o, int out_c, int c) {
  const int cg = out_c / o.groups;
  const int g = c / cg, local = c % cg;
  const int64_t word = static_cast<int64_t>(g) * PackedWords(cg) + local / 64;  // bit layouts
  switch (o.kind) {
    case OutputKind::kFloat:
      return static_cast<int64_t>(c) * sizeof(float);
    case OutputKind::kBits:
      return word * 8 + local % 64 / 8;
    case OutputKind::kU8:
      return static_cast<int64_t>(g) * Int8Channels(cg) + local;
    case OutputKind::kPlanes2:
      return word * 16 + local % 64 / 8;  // the low plane; the high plane 8 bytes on
  }
  return 0;
}

bool OutputLayoutSupported(const ConvOutput& o, int out_c, int groups) {
  if (groups <= 0 || out_c % groups != 0 || o.groups <= 0 || out_c % o.groups != 0) return false;
  if (o.kind == OutputKind::kFloat) return true;
  const int out_cg = out_c / groups, cg = out_c / o.groups;
  const bool bit_layout = o.kind != OutputKind::kU8;
  for (int g = 0; g < groups; ++g) {
    for (int oc0 = 0; oc0 < out_cg; oc0 += kOutputBlock) {
      const int local = (g * out_cg + oc0) % cg;
      const int count = std::min(kOutputBlock, out_cg - oc0);
      if (local + count > cg || (bit_layout && local % kOutputBlock != 0)) return false;
    }
  }
  // Blocks of bits are written as 16-bit halves of 64-bit words.
  return !bit_layout || std::endian::native == std::endian::little;
}

namespace {

// True when every step of TransformOne for channel c is a monotone function of finite floats on
// sums within [-bound, bound]: IEEE roundings are monotone, so then is the whole, and no step can
// meet an infinity or make a NaN (the quantization's division may overflow to an infinity, which
// it clamps).
bool MonotoneFinite(const OutputTransform& t, int c, int32_t bound) {
  constexpr double kLimit = 1e37;  // below FLT_MAX with room for one rounding
  auto finite = [](const float* v, int i) { return v == nullptr || std::isfinite(v[i]); };
  if (!finite(t.mul, c) || !finite(t.bias, c) || !finite(t.bn_mul, c) || !finite(t.bn_add, c)) {
    return false;
  }
  double y = static_cast<double>(bound) * std::fabs(t.mul[c]);
  if (t.bias != nullptr) y += std::fabs(t.bias[c]);
  if (t.bn_mul != nullptr) y = y * std::fabs(t.bn_mul[c]) + std::fabs(t.bn_add[c]);
  if (!(y < kLimit)) return false;
  switch (t.act) {
    case Activation::kNone:
    case Activation::kRelu:
      return true;
    case Activation::kHardtanh:
      return std::isfinite(t.act_min) && std::isfinite(t.act_max);
    case Activation::kPrelu:
      return finite(t.slope, c) && t.slope[c] >= 0.f && y * t.slope[c] < kLimit;
  }
  return false;
}

}  // namespace

bool Planes2Thresholds(const OutputTransform& t, const ActivationQuant& q, int out_c, int32_t bound,
                       int32_t* threshold) {
  if (q.qmax - q.qmin != 3 || !(q.scale > 0.f) || !std::isfinite(q.scale) || bound < 0 ||
      bound == INT32_MAX) {
    return false;
  }
  for (int c = 0; c < out_c; ++c) {
    if (!MonotoneFinite(t, c, bound)) return false;
  }
  for (int c = 0; c < out_c; ++c) {
    auto u = [&](int32_t d) { return QuantizeOneU8(q, TransformOne(t, c, d)) - q.offset - q.qmin; };
    // Monotone: the ends say which way (a constant channel either way).
    const bool flip = u(-bound) > u(bound);
    auto v = [&](int32_t d) { return flip ? 3 - u(d) : u(d); };
    for (int k = 0; k < 3; ++k) {
      // The least d with v(d) > k, or bound + 1 where there is none.
      int64_t lo = -static_cast<int64_t>(bound), hi = static_cast<int64_t>(bound) + 1;
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (v(static_cast<int32_t>(mid)) > k) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      threshold[k * out_c + c] = static_cast<int32_t>(lo);
    }
    threshold[3 * out_c + c] = flip ? 1 : 0;
  }
  return true;
}

void StoreOutputRef(const ConvOutput& o, int out_c, int c, int32_t d, unsigned char* pixel) {
  unsigned char* at = pixel + OutputChannelOffset(o, out_c, c);
  const int bit = c % (out_c / o.groups) % 8;
  auto set_bit = [&](unsigned char* byte, bool on) {
    *byte = static_cast<unsigned char>(on ? *byte | (1u << bit) : *byte & ~(1u << bit));
  };
  switch (o.kind) {
    case OutputKind::kFloat: {
      const float y = TransformOne(o.transform, c, d);
      std::memcpy(at, &y, sizeof(y));
      break;
    }
    case OutputKind::kBits:
      set_bit(at, d < o.threshold[c]);
      break;
    case OutputKind::kU8:
      *at = QuantizeOneU8(o.quant, TransformOne(o.transform, c, d));
      break;
    case OutputKind::kPlanes2: {
      const int u =
          QuantizeOneU8(o.quant, TransformOne(o.transform, c, d)) - o.quant.offset - o.quant.qmin;
      set_bit(at, (u & 1) != 0);
      set_bit(at + 8, (u & 2) != 0);
      break;
    }
  }
}

}  // namespace hybrid::kernels
