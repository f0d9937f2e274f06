// Binary (1-bit) kernels: bitpacking along channels and XNOR-popcount convolution (dense layers
// are 1x1 convolutions of 1x1 images).
//
// Conventions shared with the trainer and the ref backend: a value x packs to bit 1 when x < 0
// (sign(x) = -1) and to bit 0 otherwise (sign(0) = +1). A pixel of a packed NHWC tensor holds,
// for each group, ceil(channels_per_group / 64) words; unused high bits are 0 in activations and
// weights alike, so they never count. The dot product of K signs is K - 2 * popcount(a XOR w).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/int8.h"
#include "kernels/output.h"
#include "kernels/params.h"

namespace hybrid::kernels {

// 64-bit words per pixel and group for `channels_per_group` channels.
inline int PackedWords(int channels_per_group) { return (channels_per_group + 63) / 64; }

// Packs `pixels` NHWC pixels of `channels` floats (split into `groups`) into words: bit 1 where
// x < below[c] or x > above[c], which folds a monotone per-channel function before the sign
// (a batchnorm, with a negative scale too); with both null, where x < 0. NaN packs to 0 (sign
// +1) either way. out holds pixels * groups * PackedWords(cg).
void BitpackF32(int64_t pixels, int channels, int groups, const float* below, const float* above,
                const float* in, uint64_t* out);
void BitpackF32Ref(int64_t pixels, int channels, int groups, const float* below, const float* above,
                   const float* in, uint64_t* out);

// Limits of BinaryConv2d: kernel_h * kernel_w taps and words per pixel and group.
inline constexpr int kMaxBinaryTaps = 121;
inline constexpr int kMaxBinaryWords = 1024;
// True when BinaryConv2d can run `p` (within the limits above, groups dividing the channels).
bool BinaryConvSupported(const Conv2dParams& p);

// Output channels per block of packed weights: every target's microkernel reads blocks of 16.
inline constexpr int kBinaryOcBlock = 16;

// True when the current dispatch target's binary convolution reads its weights as nibbles (AVX2):
// each word w stored as w & 0x0F0F... and (w >> 4) & 0x0F0F..., so that XORed with the input's
// nibbles they index the popcount table directly. Pack after ForceTarget, never across it.
bool BinaryWeightsAsNibbles();

// Size in words of a binary convolution's packed weights (twice as many as nibbles).
size_t BinaryConvPackedWeightsWords(const Conv2dParams& p);

// Packs float weights [out_c][kh][kw][in_c/groups] by sign into blocks
// [group][oc block][kh][kw][word][16 output channels], or as nibbles
// [group][oc block][kh][kw][word][low, high nibbles][16]; channels past out_c are zero.
void PackBinaryConvWeights(const Conv2dParams& p, const float* weights, uint64_t* packed);

// Per output channel and tap, the signed sum of that tap's weight signs (in_c/groups - 2 * the
// number of negative weights): what a zero-padded tap must take back. out_c * kh * kw values.
void BinaryConvTapSums(const Conv2dParams& p, const float* weights, int32_t* tap_sums);

// For each output pixel (out_h * out_w) and tap (kh * kw): the word offset of the input pixel the
// tap reads within one image, or -1 where it falls in the padding. Computed once per shape.
void BinaryConvIndirection(const Conv2dParams& p, int64_t* offsets);

// Binary convolution of output rows [row_begin, row_end) of batch * out_h. `in` is the packed
// input (BitpackF32 of the NHWC input), `packed` from PackBinaryConvWeights, `tap_sums` from
// BinaryConvTapSums (read only when p.pad_value == 0: one-padding, pad_value +1, needs no
// correction), `offsets` from BinaryConvIndirection. Writes through `o` (kernels/output.h):
// floats, or the input of a following binary, integer or 2-bit layer; expects
// OutputLayoutSupported(o, p.out_c, p.groups).
void BinaryConv2d(const Conv2dParams& p, const uint64_t* in, const uint64_t* packed,
                  const int32_t* tap_sums, const int64_t* offsets, const ConvOutput& o,
                  int row_begin, int row_end);
// The reference twin: the same contract, straight from the definition, on unpacked signs.
void BinaryConv2dRef(const Conv2dParams& p, const uint64_t* in, const float* weights,
                     const ConvOutput& o, int row_begin, int row_end);

// 2-bit layers, bit-serial: weights in {-1, 0, +1} (int2), activations of 4 levels (int2).
// Activations are stored as u = clamp(round(x / scale) + zero_point, qmin, qmax) - qmin in
// [0, 3], in two bit planes (u = b0 + 2 * b1): per pixel and group, PackedWords(cg) pairs of
// words (b0, b1). The layer's integer sum is sum (u - u_zero) * w with u_zero = zero_point - qmin,
// the same as the integer kernels' (docs/ir.md).
void QuantizeBitplanes2(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                        const float* in, uint64_t* out);
void QuantizeBitplanes2Ref(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                           const float* in, uint64_t* out);

// One pixel of the quantized pad value in 2-bit planes: groups * PackedWords(cg) * 2 words.
void Bit2PadPixel(const Conv2dParams& p, const ActivationQuant& q, uint64_t* pad);

// Size in words of packed 2-bit weights: [group][oc block][kh][kw][word][+1 plane, -1 plane][16].
size_t Bit2ConvPackedWeightsWords(const Conv2dParams& p);
// Packs weights [out_c][kh][kw][in_c/groups], each in {-1, 0, +1}.
void PackBit2ConvWeights(const Conv2dParams& p, const int8_t* weights, uint64_t* packed);

// 2-bit convolution of output rows [row_begin, row_end). `offsets` from BinaryConvIndirection,
// `zero[c]` = u_zero * (sum of channel c's weights) (Int8ConvWeightSums), `pad_pixel` from
// Bit2PadPixel. Writes through `o` as BinaryConv2d does.
void Bit2Conv2d(const Conv2dParams& p, const uint64_t* in, const uint64_t* pad_pixel,
                const uint64_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end);
// The reference twin, on unpacked weights and the zero value u_zero.
void Bit2Conv2dRef(const Conv2dParams& p, const uint64_t* in, const uint64_t* pad_pixel,
                   const int8_t* weights, int u_zero, const ConvOutput& o, int row_begin,
                   int row_end);

}  // namespace hybrid::kernels
