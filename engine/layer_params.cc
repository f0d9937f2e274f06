#include "engine/layer_params.h"

#include <cmath>

#include "kernels/ref.h"

namespace hybrid::engine {

using graph::OpType;
using graph::Precision;

kernels::Conv2dParams ConvParamsOf(const NodeContext& ctx) {
  // A fused chain keeps the layer's shape: channelwise nodes follow it.
  return ConvParamsOf(*ctx.node, ctx.input_shapes[0], ctx.output_shape);
}

kernels::Conv2dParams ConvParamsOf(const graph::Node& node, const graph::Shape& x,
                                   const graph::Shape& y) {
  kernels::Conv2dParams p;
  p.batch = static_cast<int>(x[0]);
  if (node.op == OpType::kDense) {
    p.in_c = static_cast<int>(x[1]);
    p.out_c = static_cast<int>(y[1]);
    return p;
  }
  const auto& a = std::get<graph::Conv2dAttrs>(node.attrs);
  p.in_h = static_cast<int>(x[1]);
  p.in_w = static_cast<int>(x[2]);
  p.in_c = static_cast<int>(x[3]);
  p.out_h = static_cast<int>(y[1]);
  p.out_w = static_cast<int>(y[2]);
  p.out_c = static_cast<int>(y[3]);
  p.kernel_h = a.kernel_h;
  p.kernel_w = a.kernel_w;
  p.stride_h = a.stride_h;
  p.stride_w = a.stride_w;
  p.dilation_h = a.dilation_h;
  p.dilation_w = a.dilation_w;
  p.pad_top = a.pad_top;
  p.pad_left = a.pad_left;
  p.groups = a.groups;
  p.pad_value = a.pad_value;
  return p;
}

const graph::Quantization* QuantizationOf(const graph::Node& node) {
  if (node.op == OpType::kConv2d) return &std::get<graph::Conv2dAttrs>(node.attrs).quant;
  if (node.op == OpType::kDense) return &std::get<graph::DenseAttrs>(node.attrs).quant;
  return nullptr;
}

namespace {
bool IsInteger(Precision p) {
  return p == Precision::kInt8 || p == Precision::kInt4 || p == Precision::kInt2;
}
}  // namespace

bool IsIntegerLayer(const graph::Quantization& q) {
  return IsInteger(q.weight_precision) && IsInteger(q.activation_precision);
}

kernels::ActivationQuant ActivationQuantOf(const graph::Quantization& q) {
  const int bits = graph::Bits(q.activation_precision);
  kernels::ActivationQuant a;
  a.scale = q.act_scale;
  a.zero_point = q.act_zero_point;
  a.qmin = q.act_signed ? -(1 << (bits - 1)) : 0;
  a.qmax = q.act_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  a.offset = q.act_signed ? 128 : 0;
  return a;
}

IntegerLayer MakeIntegerLayer(const NodeContext& ctx) {
  const graph::Quantization& q = *QuantizationOf(*ctx.node);
  IntegerLayer l;
  l.p = ConvParamsOf(ctx);
  l.act = ActivationQuantOf(q);
  const int64_t per_channel =
      static_cast<int64_t>(l.p.kernel_h) * l.p.kernel_w * (l.p.in_c / l.p.groups);
  l.weights.resize(static_cast<size_t>(l.p.out_c * per_channel));
  std::vector<float> scales(l.p.out_c);
  kernels::QuantizeWeightsToIntRef(graph::Bits(q.weight_precision), l.p.out_c, per_channel,
                                   ctx.inputs[1], l.weights.data(), scales.data());
  l.mul.resize(l.p.out_c);
  for (int c = 0; c < l.p.out_c; ++c) l.mul[c] = q.act_scale * scales[c];
  l.pad_pixel.assign(static_cast<size_t>(l.p.groups) * kernels::Int8Channels(l.p.in_c / l.p.groups),
                     kernels::QuantizeOneU8(l.act, l.p.pad_value));
  return l;
}

void FoldBatchNorm(const graph::Graph& g, const graph::Node& bn, int channels,
                   std::vector<float>* scale, std::vector<float>* shift) {
  const float eps = std::get<graph::BatchNormAttrs>(bn.attrs).epsilon;
  const float* gamma = g.ConstantData<float>(bn.inputs[1]);
  const float* beta = g.ConstantData<float>(bn.inputs[2]);
  const float* mean = g.ConstantData<float>(bn.inputs[3]);
  const float* var = g.ConstantData<float>(bn.inputs[4]);
  scale->resize(channels);
  shift->resize(channels);
  for (int c = 0; c < channels; ++c) {
    const double s = gamma[c] / std::sqrt(static_cast<double>(var[c]) + eps);
    (*scale)[c] = static_cast<float>(s);
    (*shift)[c] = static_cast<float>(beta[c] - mean[c] * s);
  }
}

}  // namespace hybrid::engine
