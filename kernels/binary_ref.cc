// Plan-time packing for the binary kernels and their reference twins, in plain C++.
#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/binary.h"

namespace hybrid::kernels {

bool BinaryConvSupported(const Conv2dParams& p) {
  return p.groups > 0 && p.in_c % p.groups == 0 && p.out_c % p.groups == 0 &&
         p.kernel_h * p.kernel_w <= kMaxBinaryTaps &&
         PackedWords(p.in_c / p.groups) <= kMaxBinaryWords;
}

void BitpackF32Ref(int64_t pixels, int channels, int groups, const float* below, const float* above,
                   const float* in, uint64_t* out) {
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  for (int64_t px = 0; px < pixels; ++px) {
    for (int g = 0; g < groups; ++g) {
      uint64_t* dst = out + (px * groups + g) * words;
      std::memset(dst, 0, sizeof(uint64_t) * words);
      for (int c = 0; c < cg; ++c) {
        const int ch = g * cg + c;
        const float x = in[px * channels + ch];
        const bool negative = below != nullptr ? x < below[ch] || x > above[ch] : x < 0.f;
        if (negative) dst[c / 64] |= uint64_t{1} << (c % 64);
      }
    }
  }
}

namespace {

// Words of one plane of packed weights: [group][oc block][kh][kw][word][16 output channels].
size_t WeightPlaneWords(const Conv2dParams& p) {
  const int out_cg = p.out_c / p.groups;
  const size_t blocks = static_cast<size_t>((out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock);
  return static_cast<size_t>(p.groups) * blocks * p.kernel_h * p.kernel_w *
         PackedWords(p.in_c / p.groups) * kBinaryOcBlock;
}

constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;

}  // namespace

size_t BinaryConvPackedWeightsWords(const Conv2dParams& p) {
  return (BinaryWeightsAsNibbles() ? 2 : 1) * WeightPlaneWords(p);
}

void PackBinaryConvWeights(const Conv2dParams& p, const float* weights, uint64_t* packed) {
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int words = PackedWords(cg);
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock;
  const bool nibbles = BinaryWeightsAsNibbles();
  std::vector<uint64_t> plain_storage;
  if (nibbles) plain_storage.resize(WeightPlaneWords(p));
  uint64_t* plain = nibbles ? plain_storage.data() : packed;
  std::memset(plain, 0, WeightPlaneWords(p) * sizeof(uint64_t));
  for (int oc = 0; oc < p.out_c; ++oc) {
    const int g = oc / out_cg, local = oc % out_cg;
    const int blk = local / kBinaryOcBlock, lane = local % kBinaryOcBlock;
    uint64_t* block =
        plain + (static_cast<int64_t>(g) * blocks + blk) * taps * words * kBinaryOcBlock;
    for (int t = 0; t < taps; ++t) {
      const float* w = weights + (static_cast<int64_t>(oc) * taps + t) * cg;
      for (int c = 0; c < cg; ++c) {
        if (w[c] < 0.f)
          block[(t * words + c / 64) * kBinaryOcBlock + lane] |= uint64_t{1} << (c % 64);
      }
    }
  }
  if (!nibbles) return;
  // Each row of 16 words becomes its low nibbles' row, then its high nibbles' row.
  const size_t rows = WeightPlaneWords(p) / kBinaryOcBlock;
  for (size_t r = 0; r < rows; ++r) {
    for (int lane = 0; lane < kBinaryOcBlock; ++lane) {
      const uint64_t w = plain[r * kBinaryOcBlock + lane];
      packed[(2 * r) * kBinaryOcBlock + lane] = w & kLowNibbles;
      packed[(2 * r + 1) * kBinaryOcBlock + lane] = (w >> 4) & kLowNibbles;
    }
  }
}

void BinaryConvTapSums(const Conv2dParams& p, const float* weights, int32_t* tap_sums) {
  const int cg = p.in_c / p.groups;
  const int taps = p.kernel_h * p.kernel_w;
  for (int oc = 0; oc < p.out_c; ++oc) {
    for (int t = 0; t < taps; ++t) {
      const float* w = weights + (static_cast<int64_t>(oc) * taps + t) * cg;
      int32_t sum = 0;
      for (int c = 0; c < cg; ++c) sum += w[c] < 0.f ? -1 : 1;
      tap_sums[oc * taps + t] = sum;
    }
  }
}

void BinaryConvIndirection(const Conv2dParams& p, int64_t* offsets) {
  ConvIndirection(p, static_cast<int64_t>(p.groups) * PackedWords(p.in_c / p.groups), offsets);
}

namespace {

// Channel oc's integer sum at output pixel (b, oy, ox): signs of the packed input against signs of
// the float weights, padded taps reading +1 (one-padding) or nothing (zero-padding).
int32_t BinaryDotRef(const Conv2dParams& p, const uint64_t* in, const float* weights, int b, int oy,
                     int ox, int oc) {
  const int cg = p.in_c / p.groups;
  const int g = oc / (p.out_c / p.groups);
  const int words = PackedWords(cg);
  int32_t dot = 0;
  for (int ky = 0; ky < p.kernel_h; ++ky) {
    for (int kx = 0; kx < p.kernel_w; ++kx) {
      const int iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
      const int ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
      const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
      if (!inside && p.pad_value == 0.f) continue;
      const uint64_t* px =
          inside ? in + ((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * p.groups * words +
                       g * words
                 : nullptr;
      const float* w =
          weights + ((static_cast<int64_t>(oc) * p.kernel_h + ky) * p.kernel_w + kx) * cg;
      for (int c = 0; c < cg; ++c) {
        const int x = inside && (px[c / 64] >> (c % 64)) & 1 ? -1 : 1;
        dot += x * (w[c] < 0.f ? -1 : 1);
      }
    }
  }
  return dot;
}

}  // namespace

void BinaryConv2dRef(const Conv2dParams& p, const uint64_t* in, const float* weights,
                     const ConvOutput& o, int row_begin, int row_end) {
  const int64_t pixel_bytes = OutputPixelBytes(o, p.out_c);
  for (int row = row_begin; row < row_end; ++row) {
    const int b = row / p.out_h, oy = row % p.out_h;
    for (int ox = 0; ox < p.out_w; ++ox) {
      unsigned char* pixel = static_cast<unsigned char*>(o.data) +
                             (static_cast<int64_t>(row) * p.out_w + ox) * pixel_bytes;
      for (int oc = 0; oc < p.out_c; ++oc) {
        StoreOutputRef(o, p.out_c, oc, BinaryDotRef(p, in, weights, b, oy, ox, oc), pixel);
      }
    }
  }
}

void QuantizeBitplanes2Ref(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                           const float* in, uint64_t* out) {
  const int cg = channels / groups;
  const int words = PackedWords(cg);
  for (int64_t px = 0; px < pixels; ++px) {
    for (int g = 0; g < groups; ++g) {
      uint64_t* dst = out + (px * groups + g) * words * 2;
      std::memset(dst, 0, sizeof(uint64_t) * words * 2);
      for (int c = 0; c < cg; ++c) {
        const int u = QuantizeOneU8(q, in[px * channels + g * cg + c]) - q.offset - q.qmin;
        dst[(c / 64) * 2] |= static_cast<uint64_t>(u & 1) << (c % 64);
        dst[(c / 64) * 2 + 1] |= static_cast<uint64_t>((u >> 1) & 1) << (c % 64);
      }
    }
  }
}

void Bit2PadPixel(const Conv2dParams& p, const ActivationQuant& q, uint64_t* pad) {
  std::vector<float> pixel(static_cast<size_t>(p.in_c), p.pad_value);
  QuantizeBitplanes2Ref(1, p.in_c, p.groups, q, pixel.data(), pad);
}

size_t Bit2ConvPackedWeightsWords(const Conv2dParams& p) { return 2 * WeightPlaneWords(p); }

void PackBit2ConvWeights(const Conv2dParams& p, const int8_t* weights, uint64_t* packed) {
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int words = PackedWords(cg);
  const int taps = p.kernel_h * p.kernel_w;
  const int blocks = (out_cg + kBinaryOcBlock - 1) / kBinaryOcBlock;
  std::memset(packed, 0, Bit2ConvPackedWeightsWords(p) * sizeof(uint64_t));
  for (int oc = 0; oc < p.out_c; ++oc) {
    const int g = oc / out_cg, local = oc % out_cg;
    const int blk = local / kBinaryOcBlock, lane = local % kBinaryOcBlock;
    uint64_t* block =
        packed + (static_cast<int64_t>(g) * blocks + blk) * taps * words * 2 * kBinaryOcBlock;
    for (int t = 0; t < taps; ++t) {
      const int8_t* w = weights + (static_cast<int64_t>(oc) * taps + t) * cg;
      for (int c = 0; c < cg; ++c) {
        if (w[c] == 0) continue;
        const int plane = w[c] > 0 ? 0 : 1;
        block[((t * words + c / 64) * 2 + plane) * kBinaryOcBlock + lane] |= uint64_t{1}
                                                                             << (c % 64);
      }
    }
  }
}

void Bit2Conv2dRef(const Conv2dParams& p, const uint64_t* in, const uint64_t* pad_pixel,
                   const int8_t* weights, int u_zero, const ConvOutput& o, int row_begin,
                   int row_end) {
  const int64_t pixel_bytes = OutputPixelBytes(o, p.out_c);
  const int cg = p.in_c / p.groups;
  const int out_cg = p.out_c / p.groups;
  const int words = PackedWords(cg);
  const int64_t pixel_words = static_cast<int64_t>(p.groups) * words * 2;
  auto value = [&](const uint64_t* px, int g, int c) {
    const uint64_t* w = px + g * words * 2 + (c / 64) * 2;
    return static_cast<int>((w[0] >> (c % 64)) & 1) + 2 * static_cast<int>((w[1] >> (c % 64)) & 1);
  };
  for (int row = row_begin; row < row_end; ++row) {
    const int b = row / p.out_h, oy = row % p.out_h;
    for (int ox = 0; ox < p.out_w; ++ox) {
      for (int oc = 0; oc < p.out_c; ++oc) {
        const int g = oc / out_cg;
        int32_t dot = 0;
        for (int ky = 0; ky < p.kernel_h; ++ky) {
          for (int kx = 0; kx < p.kernel_w; ++kx) {
            const int iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            const int ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
            const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
            const uint64_t* px =
                inside ? in + ((static_cast<int64_t>(b) * p.in_h + iy) * p.in_w + ix) * pixel_words
                       : pad_pixel;
            const int8_t* w =
                weights + ((static_cast<int64_t>(oc) * p.kernel_h + ky) * p.kernel_w + kx) * cg;
            for (int c = 0; c < cg; ++c) dot += (value(px, g, c) - u_zero) * w[c];
          }
        }
        StoreOutputRef(o, p.out_c, oc, dot,
                       static_cast<unsigned char*>(o.data) +
                           (static_cast<int64_t>(row) * p.out_w + ox) * pixel_bytes);
      }
    }
  }
}

}  // namespace hybrid::kernels
