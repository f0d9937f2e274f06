// What the quantized convolutions write for each output channel's exact integer sum: floats
// through a transform, or the input of a following quantized layer in the form it reads (bits,
// bytes, 2-bit planes). Shared by the SIMD kernels (kernels/output-inl.h vectorizes the same
// steps), their reference twins and the engine, which derives bit thresholds from the transform.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace hybrid::kernels {

enum class Activation : uint8_t { kNone, kRelu, kHardtanh, kPrelu };

// Float value of channel c's integer sum d. Each step is one float rounding, in the order the
// ref backend's separate nodes compute them, so that a fused layer equals the unfused graph:
//   y = float(d) * mul[c];  y = y + bias[c]    the layer's scale and bias (bias optional)
//   y = y * bn_mul[c];  y = y + bn_add[c]      a following batchnorm (optional)
//   then relu: y > 0 ? y : 0;  hardtanh: min(max(y, act_min), act_max);
//   or prelu: y >= 0 ? y : y * slope[c]
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

enum class OutputKind : uint8_t {
  kFloat,    // TransformOne(transform, c, d) as NHWC floats
  kBits,     // d < threshold[c] as bit 1 (sign -1): the input of a binary layer (binary.h)
  kU8,       // the float value as an integer layer stores its input (QuantizeU8, int8.h)
  kPlanes2,  // the float value as a 2-bit layer stores its input (QuantizeBitplanes2, binary.h)
};

// Where a quantized convolution's results go. The layouts of kBits, kU8 and kPlanes2 are those
// of the consuming layer's input: a tensor of out_c channels in `groups` groups. Parts of that
// layout no channel owns (unused bits, padding channels) are never written: fill the buffer once
// (zero bits; any bytes, which meet zero weights).
struct ConvOutput {
  OutputKind kind = OutputKind::kFloat;
  void* data = nullptr;
  OutputTransform transform;  // kFloat, kU8, kPlanes2
  // kBits: one per channel. kPlanes2: null (the float transform), or 4 * out_c values from
  // Planes2Thresholds that give the same planes from the sums alone.
  const int32_t* threshold = nullptr;
  ActivationQuant quant;  // kU8, kPlanes2: the consuming layer's quantization
  int groups = 1;         // kBits, kU8, kPlanes2: the consuming layer's groups
};

// Bytes of one output pixel of a layer with out_c channels.
int64_t OutputPixelBytes(const ConvOutput& o, int out_c);
// Byte offset, within an output pixel, of output channel c.
int64_t OutputChannelOffset(const ConvOutput& o, int out_c, int c);
// True when the kernels can write a layer of out_c channels in `groups` groups (its blocks of
// kOutputBlock channels) through `o`: every block must land in one consuming group, at a multiple
// of 16 channels for the bit layouts.
bool OutputLayoutSupported(const ConvOutput& o, int out_c, int groups);
// Thresholds that give a kPlanes2 output of `t` and the consumer's quantization `q` straight from
// sums d in [-bound, bound]: rows k = 0, 1, 2 of out_c thresholds, t_0 <= t_1 <= t_2, such that
// v = [d >= t_0] + [d >= t_1] + [d >= t_2], and a row of flips: the stored u is v, or 3 - v where
// the flip is 1; into threshold[0, 4 * out_c). False where no such thresholds are sure to exist:
// a transform that need not be monotone in d (PReLU with a negative slope), parameters that are
// not finite or whose products could overflow, a quantization other than four levels.
bool Planes2Thresholds(const OutputTransform& t, const ActivationQuant& q, int out_c, int32_t bound,
                       int32_t* threshold);
// Writes channel c's result for sum d into `pixel` (the output pixel's first byte): the
// definition the kernels' vector code follows (kPlanes2 through the float transform, whatever
// the thresholds).
void StoreOutputRef(const ConvOutput& o, int out_c, int c, int32_t d, unsigned char* pixel);

// Output channels per block of the SIMD kernels: their vector code reads a block's parameters
// whole.
inline constexpr int kOutputBlock = 16;

// Room for the parameters of a last block with fewer than kOutputBlock channels.
struct BlockTail {
  float mul[kOutputBlock], bias[kOutputBlock], bn_mul[kOutputBlock], bn_add[kOutputBlock],
      slope[kOutputBlock];
  int32_t threshold[kOutputBlock], zero[kOutputBlock];
  int32_t plane_threshold[3][kOutputBlock];
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

// One block of a ConvOutput, as the vector code writes it: its channels' parameters (16 each)
// and where in an output pixel it goes.
struct BlockOutput {
  OutputKind kind;
  OutputTransform transform;
  const int32_t* threshold;
  ActivationQuant quant;
  int count;       // channels of the block that exist
  int64_t offset;  // bytes from an output pixel's start to the block's first channel
  // kPlanes2 through thresholds: rows 0-2 of Planes2Thresholds for the block's channels (null:
  // the float transform) and its flips as bits.
  const int32_t* plane_threshold[3] = {nullptr, nullptr, nullptr};
  uint64_t plane_flip = 0;
};

// The block of channels [c0, c0 + count) of `o` for a layer of out_c channels.
inline BlockOutput BlockOf(const ConvOutput& o, int out_c, int c0, int count, BlockTail* tail) {
  BlockOutput b{o.kind, {}, nullptr, o.quant, count, OutputChannelOffset(o, out_c, c0)};
  if (o.kind == OutputKind::kBits) {
    b.threshold = BlockOf(o.threshold, c0, count, INT32_MIN, tail->threshold);
  } else {
    b.transform = BlockOf(o.transform, c0, count, tail);
  }
  if (o.kind == OutputKind::kPlanes2 && o.threshold != nullptr) {
    // The missing channels' bits are cleared when the block is stored: any fill does.
    for (int k = 0; k < 3; ++k) {
      b.plane_threshold[k] =
          BlockOf(o.threshold + k * out_c, c0, count, 0, tail->plane_threshold[k]);
    }
    for (int j = 0; j < count; ++j) {
      b.plane_flip |= static_cast<uint64_t>(o.threshold[3 * out_c + c0 + j] != 0) << j;
    }
  }
  return b;
}

}  // namespace hybrid::kernels
