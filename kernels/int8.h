// Integer (k-bit weights, k-bit activations, k <= 8) convolution: u8 activations times s8 weights
// summed in int32, the product VNNI's VPDPBUSD computes. Dense layers are 1x1 convolutions of
// 1x1 images.
//
// Conventions shared with the ref backend (docs/ir.md): activations quantize to
// q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax); signed activations are stored
// shifted by +128 so that every stored value is a u8, and `input_zero` is the stored value that
// means 0 (zero_point, plus 128 when signed). The layer computes
// y[c] = (sum over taps and channels of (stored - input_zero) * w) * mul[c] + bias[c],
// the sum exact in int32, then one multiply and one add. A padded tap reads the quantized
// pad value, so zero-padding contributes nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/output.h"
#include "kernels/params.h"

namespace hybrid::kernels {

// Stored channels per pixel and group: rounded up to a multiple of 4 (one VPDPBUSD lane).
inline int Int8Channels(int channels_per_group) { return (channels_per_group + 3) / 4 * 4; }

// Limits of Int8Conv2d.
inline constexpr int kMaxInt8Taps = 121;
inline constexpr int kInt8OcBlock = 16;
// True when Int8Conv2d can run `p`.
bool Int8ConvSupported(const Conv2dParams& p);

// Quantizes `pixels` NHWC pixels of `channels` floats into stored u8 values, each group's
// channels padded to Int8Channels with input_zero. out holds pixels * groups * Int8Channels(cg).
void QuantizeU8(int64_t pixels, int channels, int groups, const ActivationQuant& q, const float* in,
                uint8_t* out);
void QuantizeU8Ref(int64_t pixels, int channels, int groups, const ActivationQuant& q,
                   const float* in, uint8_t* out);

// The stored u8 value of a float (used for the pad value).
uint8_t QuantizeOneU8(const ActivationQuant& q, float x);

// Size in bytes of packed weights and their layout:
// [group][oc block of 16][kh][kw][Int8Channels(cg) / 4][16 output channels][4 channels].
size_t Int8ConvPackedWeightsBytes(const Conv2dParams& p);
// Packs integer weights [out_c][kh][kw][in_c/groups] (each within s8); missing channels are 0.
void PackInt8ConvWeights(const Conv2dParams& p, const int8_t* weights, int8_t* packed);
// Per output channel, the sum of its weights over every tap and channel.
void Int8ConvWeightSums(const Conv2dParams& p, const int8_t* weights, int32_t* sums);
// Per output pixel and tap, the byte offset of the input pixel it reads within one image, or -1
// where it reads the pad pixel.
void Int8ConvIndirection(const Conv2dParams& p, int64_t* offsets);

// Bytes of scratch that Int8Conv2d and Int4Conv2d use for any `rows` consecutive output rows of
// `p`: 0 where they use none (only their AMX code does). Ask at plan time, after any
// ForceTarget, and allocate it then, 64-byte aligned: one per call that may run at once.
size_t Int8ConvScratchBytes(const Conv2dParams& p, int rows);

// How to split the rows [0, batch * out_h) of `p` among calls that `threads` threads run at once.
// With scratch (AMX: its tiles of 32 pixels want long ranges), one range per thread, each call
// with scratch_bytes of its own (a multiple of 64); without, a row at a time, which balances the
// threads best. Ask at plan time, after any ForceTarget.
struct Int8ConvRowSplit {
  int rows_per_call = 1;
  size_t scratch_bytes = 0;  // per call
  int calls = 0;             // at most this many ranges: scratch_bytes * calls bytes in all
};
Int8ConvRowSplit SplitInt8ConvRows(const Conv2dParams& p, int threads);

// Convolution of output rows [row_begin, row_end) of batch * out_h. `in` from QuantizeU8,
// `pad_pixel` one pixel (groups * Int8Channels(cg) bytes) of the quantized pad value, `packed`
// from PackInt8ConvWeights, `zero[c]` = input_zero * (channel c's sum from Int8ConvWeightSums),
// `offsets` from Int8ConvIndirection, `scratch` Int8ConvScratchBytes(p, row_end - row_begin)
// bytes (64-byte aligned) this call alone uses, or null (then AMX code is not run). Writes the
// sum minus zero[c] through `o` (kernels/output.h); expects OutputLayoutSupported(o, p.out_c,
// p.groups). Allocates nothing.
void Int8Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const int8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end, void* scratch);
// The reference twin, on unpacked weights [out_c][kh][kw][in_c/groups] and the stored value of 0.
void Int8Conv2dRef(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                   const int8_t* weights, int32_t input_zero, const ConvOutput& o, int row_begin,
                   int row_end);

// True when a 2-bit layer (int2 weights and activations) runs faster on Int8Conv2d, its values
// as bytes, than on bit planes (binary.h, bit2_lut.h): where the integer convolutions run on AMX
// tiles, which do 16 times a VPDPBUSD's work per instruction. Ask at plan time, after any
// ForceTarget.
bool Bit2OnIntegerKernel();

// Binary layers on the AMX tiles, where they run faster than XOR-popcount (binary.h): each bit
// of the packed input becomes the byte x = 2 (bit 0, +1) or 0 (bit 1, -1) and the layer an
// integer one with input_zero 1, (x - 1) * w being the product of the signs; the padding's byte
// is 2 for one-padding and 1 for zero-padding, which then needs no correction. True where
// BinaryConv2dOnTiles runs `p`: on AMX, stride 1, each group's channels filling whole 64-byte
// tile rows, s8 weights below 1 MiB. Ask at plan time, after any ForceTarget.
bool BinaryConvOnTiles(const Conv2dParams& p);
// The pad pixel of BinaryConv2dOnTiles: groups * Int8Channels(cg) bytes.
void BinaryOnTilesPadPixel(const Conv2dParams& p, uint8_t* pad);
// The weights of BinaryConv2dOnTiles from float weights [out_c][kh][kw][in_c/groups] by sign
// (as PackBinaryConvWeights reads them: -1 where w < 0, else +1): `packed`
// Int8ConvPackedWeightsBytes(p) bytes, `zero` out_c sums of each channel's signs.
void PackBinaryOnTilesWeights(const Conv2dParams& p, const float* weights, int8_t* packed,
                              int32_t* zero);
// Output rows [row_begin, row_end) of batch * out_h from `in`, packed as BitpackF32 packs it.
// `packed` and `zero` from PackBinaryOnTilesWeights; `scratch`: Int8ConvScratchBytes(p, row_end -
// row_begin) bytes, never null. Writes the sum of sign products through `o`, as BinaryConv2d does.
// Expects BinaryConvOnTiles(p) (aborts otherwise). Allocates nothing.
void BinaryConv2dOnTiles(const Conv2dParams& p, const uint64_t* in, const uint8_t* pad_pixel,
                         const int8_t* packed, const int32_t* zero, const ConvOutput& o,
                         int row_begin, int row_end, void* scratch);

// 4-bit weights (int4, in [-7, 7]) stored two per byte: half the bytes of
// PackInt8ConvWeights' layout, each quad's 64 weight bytes as 32 bytes whose low nibbles hold
// bytes 0-31 and high nibbles bytes 32-63. Int4Conv2d unpacks them into the same dot products.
size_t Int4ConvPackedWeightsBytes(const Conv2dParams& p);
void PackInt4ConvWeights(const Conv2dParams& p, const int8_t* weights, uint8_t* packed);
void Int4Conv2d(const Conv2dParams& p, const uint8_t* in, const uint8_t* pad_pixel,
                const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                const ConvOutput& o, int row_begin, int row_end, void* scratch);

}  // namespace hybrid::kernels
