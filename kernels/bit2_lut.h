// 2-bit convolution by table lookup: the layers of Bit2Conv2d (binary.h: weights in {-1, 0, +1},
// activations u in [0, 3]) computed three input channels at a time. The activations of three
// channels form a 6-bit code; the code's row of a 64 x 64-byte table holds the dot product of
// those three activations with every pattern of three ternary weights, and one byte permutation
// (VPERMB, the row as table, 64 output channels' weight patterns as indices) yields 64 output
// channels x 3 input channels: 192 multiply-accumulates per instruction, where VNNI's VPDPBUSD
// does 64. The byte sums are widened every 14 lookups. AVX3_DL runs it with VPERMB; other
// targets run the same layouts through portable code (correct, slow).
//
// Measured on AMD EPYCs (bench/README.md): 1.12-1.32x oneDNN's int8 on Zen 4 and 1.31-1.43x on
// Zen 5 on 3x3 layers with 128 output channels or more (the bit-serial kernel: 0.95-1.08x), where
// a tile pairs two blocks and one table row feeds two VPERMBs; on Zen 5 1.07x on a 1x1 layer
// (bit-serial 0.84x) and 1.17x on a 3x3 layer of 64 output channels, whose interior tiles load a
// pixel's table row once for its three taps (bit-serial 1.01x). Bit2LutPreferred says which.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "kernels/output.h"
#include "kernels/params.h"

namespace hybrid::kernels {

// Codes per pixel and group: one per three input channels.
inline int Bit2Triples(int channels_per_group) { return (channels_per_group + 2) / 3; }

// Output channels per block of packed weights: the bytes of one VPERMB.
inline constexpr int kBit2LutOcBlock = 64;

// The table: row r (at byte 64 * r) for the code r = b0 + 8 * b1 (bit j of b0 and b1 the low and
// high bit of channel j's activation), entry p for the weight pattern p = (w0 + 1) + 3 (w1 + 1)
// + 9 (w2 + 1): 9 + sum of u_j * w_j, in [0, 18] (biased to stay unsigned; entries 27-63 hold 9).
extern const std::array<uint8_t, 64 * 64> kBit2LutTable;  // 64-byte aligned

// True for 3-wide kernels at stride 1 and dilation 1 along the row, where neighbouring output
// pixels read the same input pixels one tap apart: Bit2LutConv2d then loads a single block's
// table rows once for the three taps that read them.
inline bool Bit2LutRowsOf3(const Conv2dParams& p) {
  return p.kernel_w == 3 && p.stride_w == 1 && p.dilation_w == 1;
}

// True when the dispatched target runs a layer of shape `p` faster through Bit2LutConv2d than
// through Bit2Conv2d: it has VPERMB (AVX3_DL) and every group at least two blocks of output
// channels, or one whole block with Bit2LutRowsOf3.
bool Bit2LutPreferred(const Conv2dParams& p);

// Codes of `pixels` pixels of 2-bit planes (QuantizeBitplanes2's layout, binary.h): per pixel and
// group, Bit2Triples(cg) values, the code of channels 3i, 3i + 1, 3i + 2 (missing channels read
// 0) times 64: the byte offset of its table row.
void Bit2LutCodes(int64_t pixels, int channels, int groups, const uint64_t* planes,
                  uint16_t* codes);
void Bit2LutCodesRef(int64_t pixels, int channels, int groups, const uint64_t* planes,
                     uint16_t* codes);

// Size in bytes of packed weights: [group][oc block of 64][kh][kw][triple][64 output channels],
// one weight pattern per byte.
size_t Bit2LutPackedWeightsBytes(const Conv2dParams& p);
// Packs weights [out_c][kh][kw][in_c/groups], each in {-1, 0, +1}; missing input and output
// channels weigh 0.
void PackBit2LutWeights(const Conv2dParams& p, const int8_t* weights, uint8_t* packed);

// Limits of Bit2LutConv2d (those of BinaryConv2dSupported, binary.h).
bool Bit2LutConvSupported(const Conv2dParams& p);

// 2-bit convolution of output rows [row_begin, row_end) of batch * out_h: `codes` from
// Bit2LutCodes of the input planes, `pad_codes` the codes of Bit2PadPixel's pixel, `packed` from
// PackBit2LutWeights, `zero` and `o` as for Bit2Conv2d, `offsets` from
// ConvIndirection(p, groups * Bit2Triples(cg), ...) (in codes). Writes what Bit2Conv2d writes,
// bit for bit; its reference twin is Bit2Conv2dRef.
void Bit2LutConv2d(const Conv2dParams& p, const uint16_t* codes, const uint16_t* pad_codes,
                   const uint8_t* packed, const int32_t* zero, const int64_t* offsets,
                   const ConvOutput& o, int row_begin, int row_end);

}  // namespace hybrid::kernels
