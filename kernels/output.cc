#include "kernels/output.h"

#include <algorithm>
#include <bit>
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
