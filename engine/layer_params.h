// Engine-internal: what the ref and native backends both derive from a conv2d or dense node, so
// that they compute quantized layers from the same integers and scales.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "kernels/int8.h"
#include "kernels/params.h"

namespace hybrid::engine {

// A conv2d or dense node's shapes as kernel parameters; a dense layer is a 1x1 convolution of
// 1x1 images.
kernels::Conv2dParams ConvParamsOf(const graph::Node& node, const graph::Shape& in,
                                   const graph::Shape& out);
kernels::Conv2dParams ConvParamsOf(const NodeContext& ctx);

// The quantization attributes of a conv2d or dense node, or null for other ops.
const graph::Quantization* QuantizationOf(const graph::Node& node);

// True when both weights and activations are k-bit integers (int8, int4 or int2): such layers
// sum integers exactly and scale once (docs/ir.md).
bool IsIntegerLayer(const graph::Quantization& q);

// How an integer layer with quantization `q` stores its input activations.
kernels::ActivationQuant ActivationQuantOf(const graph::Quantization& q);

// An integer layer prepared at plan time.
struct IntegerLayer {
  kernels::Conv2dParams p;
  kernels::ActivationQuant act;
  std::vector<int8_t> weights;     // [out_c][kh][kw][in_c/groups]
  std::vector<float> mul;          // act_scale * weight scale, per output channel
  std::vector<uint8_t> pad_pixel;  // one pixel of the quantized pad value
};
IntegerLayer MakeIntegerLayer(const NodeContext& ctx);

// A batchnorm node's per-channel affine y = x * scale[c] + shift[c], folded in double from its
// constant inputs (gamma, beta, mean, variance) so that every backend folds alike.
void FoldBatchNorm(const graph::Graph& g, const graph::Node& bn, int channels,
                   std::vector<float>* scale, std::vector<float>* shift);

}  // namespace hybrid::engine
