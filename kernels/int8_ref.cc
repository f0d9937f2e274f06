// Plan-time packing for the integer kernels and their reference twins, in plain C++.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/int8.h"

namespace hybrid::kernels {

bool Int8ConvSupported(const Conv2dParams& p) {
  return p.groups > 0 && p.in_c % p.groups == 0 && p.out_c % p.groups == 0 &&
         p.kernel_h * p.kernel_w <= kMaxInt8Taps;
}

uint8_t QuantizeOneU8(const ActivationQuant& q, float x) {
  float v = std::nearbyint(x / q.scale) + static_cast<float>(q.zero_point);
  v = std::min(std::max(v, static_cast<float>(q.qmin)), static_cast<float>(q.qmax));
  return static_cast<uint8_t>(static_cast<int>(v) + q.offset);
}

void QuantizeU8Ref(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                   const float* in, uint8_t* out) {
  const int cg = channels / groups;
  const int stored = Int8Channels(cg);
  for (int64_t px = 0; px < pixels; ++px) {
    for (int g = 0; g < groups; ++g) {
      uint8_t* dst = out + (px * groups + g) * stored;
      for (int c = 0; c < stored; ++c) {
        dst[c] = c < cg ? QuantizeOneU8(q, in[px * channels + g * cg + c])
                        : static_cast<uint8_t>(q.input_zero());
      }
    }
  }
}

size_t Int8ConvPackedWeightsBytes(const Conv2dParams& p) {
  const int out_cg = p.out_c / p.groups;
  const size_t blocks = static_cast<size_t>((out_cg + kInt8OcBlock - 1) / kInt8OcBlock);
  return static_cast<size_t>(p.groups) * blocks * p.kernel_h * p.kernel_w *
         Int8Channels(p.in_c / p.groups) * kInt8OcBlock;
}

void PackInt8ConvWeights(const Conv2dParams& p, const int8_t* weights, int8_t* packed) {
  const int cg = p.in_c / p.groups;
  const int stored = Int8Channels(cg);
  const int out_cg = p.out_c / p.groups;
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kInt8OcBlock - 1) / kInt8OcBlock;
  std::memset(packed, 0, Int8ConvPackedWeightsBytes(p));
  for (int oc = 0; oc < p.out_c; ++oc) {
    const int g = oc / out_cg, local = oc % out_cg;
    const int blk = local / kInt8OcBlock, lane = local % kInt8OcBlock;
    int8_t* block =
        packed + (static_cast<int64_t>(g) * blocks + blk) * taps * stored * kInt8OcBlock;
    for (int t = 0; t < taps; ++t) {
      for (int c = 0; c < cg; ++c) {
        block[((t * stored / 4 + c / 4) * kInt8OcBlock + lane) * 4 + c % 4] =
            weights[(static_cast<int64_t>(oc) * taps + t) * cg + c];
      }
    }
  }
}

size_t Int4ConvPackedWeightsBytes(const Conv2dParams& p) {
  return Int8ConvPackedWeightsBytes(p) / 2;
}

void PackInt4ConvWeights(const Conv2dParams& p, const int8_t* weights, uint8_t* packed) {
  std::vector<int8_t> bytes(Int8ConvPackedWeightsBytes(p));
  PackInt8ConvWeights(p, weights, bytes.data());
  // Each quad's 64 bytes become 32: low nibble from byte i, high nibble from byte i + 32.
  for (size_t q = 0; q < bytes.size() / 64; ++q) {
    for (int i = 0; i < 32; ++i) {
      const uint8_t lo = static_cast<uint8_t>(bytes[q * 64 + i]) & 0x0F;
      const uint8_t hi = static_cast<uint8_t>(bytes[q * 64 + 32 + i]) & 0x0F;
      packed[q * 32 + i] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void Int8ConvWeightSums(const Conv2dParams& p, const int8_t* weights, int32_t* sums) {
  const int64_t per_oc = static_cast<int64_t>(p.kernel_h) * p.kernel_w * (p.in_c / p.groups);
  for (int oc = 0; oc < p.out_c; ++oc) {
    int32_t s = 0;
    for (int64_t i = 0; i < per_oc; ++i) s += weights[oc * per_oc + i];
    sums[oc] = s;
  }
}

void Int8ConvIndirection(const Conv2dParams& p, int64_t* offsets) {
  ConvIndirection(p, static_cast<int64_t>(p.groups) * Int8Channels(p.in_c / p.groups), offsets);
}

void Int8Conv2dRef(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                   const int8_t* weights, int32_t input_zero, const ConvOutput& o, int row_begin,
                   int row_end) {
  const int64_t out_pixel_bytes = OutputPixelBytes(o, p.out_c);
  const int cg = p.in_c / p.groups;
  const int stored = Int8Channels(cg);
  const int out_cg = p.out_c / p.groups;
  const int64_t pixel_bytes = static_cast<int64_t>(p.groups) * stored;
  for (int row = row_begin; row < row_end; ++row) {
    const int b = row / p.out_h, oy = row % p.out_h;
    for (int ox = 0; ox < p.out_w; ++ox) {
      for (int oc = 0; oc < p.out_c; ++oc) {
        const int g = oc / out_cg;
        int32_t acc = 0;
        for (int ky = 0; ky < p.kernel_h; ++ky) {
          for (int kx = 0; kx < p.kernel_w; ++kx) {
            const int iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            const int ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
            const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
            const uint8_t* x =
                (inside ? in + ((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * pixel_bytes
                        : pad_pixel) +
                g * stored;
            const int8_t* w =
                weights + ((static_cast<int64_t>(oc) * p.kernel_h + ky) * p.kernel_w + kx) * cg;
            for (int c = 0; c < cg; ++c) acc += (static_cast<int32_t>(x[c]) - input_zero) * w[c];
          }
        }
        StoreOutputRef(o, p.out_c, oc, acc,
                       static_cast<unsigned char*>(o.data) +
                           (static_cast<int64_t>(row) * p.out_w + ox) * out_pixel_bytes);
      }
    }
  }
}

}  // namespace hybrid::kernels
