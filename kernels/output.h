// The output transforms of the quantized kernels: what becomes of an output channel's exact
// integer sum. Shared by the SIMD kernels (kernels/output-inl.h vectorizes the same steps), their
// reference twins and the engine, which derives bit thresholds from it.
#pragma once

#include <cstdint>

namespace hybrid::kernels {

enum class Activation : uint8_t { kNone, kRelu, kHardtanh, kPrelu };

// Float output of channel c's integer sum d. Each step is one float rounding, in the order the
// ref backend's separate nodes compute them, so that a fused layer equals the unfused graph:
//   y = float(d) * mul[c];  y = y + bias[c]            the layer's scale and bias (bias optional)
//   y = y * bn_mul[c];  y = y + bn_add[c]              a following batchnorm (optional)
//   relu: y > 0 ? y : 0;  hardtanh: min(max(y, act_min), act_max);  prelu: y >= 0 ? y : y *
//   slope[c]
struct OutputTransform {
  const float* mul = nullptr;
  const float* bias = nullptr;
  const float* bn_mul = nullptr;  // with bn_add, or null
  const float* bn_add = nullptr;
  Activation act = Activation::kNone;
  float act_min = -1.f, act_max = 1.f;  // hardtanh
  const float* slope = nullptr;         // prelu, one per channel
};

// The transform of one channel's sum, written as the ref kernels write each step.
inline float TransformOne(const OutputTransform& o, int c, int32_t d) {
  float y = static_cast<float>(d) * o.mul[c];
  if (o.bias != nullptr) y = y + o.bias[c];
  if (o.bn_mul != nullptr) {
    y = y * o.bn_mul[c];
    y = y + o.bn_add[c];
  }
  switch (o.act) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      y = y > 0.f ? y : 0.f;
      break;
    case Activation::kHardtanh:
      y = y < o.act_min ? o.act_min : y;
      y = o.act_max < y ? o.act_max : y;
      break;
    case Activation::kPrelu:
      y = y >= 0.f ? y : y * o.slope[c];
      break;
  }
  return y;
}

// Bitpacked output for a following binary layer: channel c's bit is 1 (sign -1) when its sum
// d < threshold[c], written in the packed layout of a tensor of out_c channels in `groups` groups
// (kernels/binary.h: per pixel and group, PackedWords(out_c / groups) words). The engine derives
// the thresholds from the float transform and the nodes between the two layers.
struct BitsOutput {
  const int32_t* threshold = nullptr;
  int groups = 1;
};

// Output channels per block of the SIMD kernels: their vector code reads a block's parameters
// whole.
inline constexpr int kOutputBlock = 16;

// Room for the parameters of a last block with fewer than kOutputBlock channels.
struct BlockTail {
  float mul[kOutputBlock], bias[kOutputBlock], bn_mul[kOutputBlock], bn_add[kOutputBlock],
      slope[kOutputBlock];
  int32_t threshold[kOutputBlock], zero[kOutputBlock];
};

// The transform of channels [c0, c0 + count) seen as one block: pointers into o's arrays, or, when
// count < kOutputBlock, copies padded with zeros in `tail`.
inline OutputTransform BlockOf(const OutputTransform& o, int c0, int count, BlockTail* tail) {
  OutputTransform b = o;
  auto view = [&](const float* src, float* room) -> const float* {
    if (src == nullptr) return nullptr;
    if (count == kOutputBlock) return src + c0;
    for (int j = 0; j < kOutputBlock; ++j) room[j] = j < count ? src[c0 + j] : 0.f;
    return room;
  };
  b.mul = view(o.mul, tail->mul);
  b.bias = view(o.bias, tail->bias);
  b.bn_mul = view(o.bn_mul, tail->bn_mul);
  b.bn_add = view(o.bn_add, tail->bn_add);
  b.slope = view(o.slope, tail->slope);
  return b;
}

// Integers of channels [c0, c0 + count) as one block: a pointer into `values`, or copies in
// `room` padded with `fill`.
inline const int32_t* BlockOf(const int32_t* values, int c0, int count, int32_t fill,
                              int32_t* room) {
  if (values == nullptr) return nullptr;
  if (count == kOutputBlock) return values + c0;
  for (int j = 0; j < kOutputBlock; ++j) room[j] = j < count ? values[c0 + j] : fill;
  return room;
}

}  // namespace hybrid::kernels
