// Quantization-aware layers (libtorch) whose eval-mode arithmetic is the engine's: binary layers
// (XNOR-Net weights sign(W) * mean|W| per output channel, activations sign(x) with sign(0) = +1,
// padded with +1), k-bit layers (symmetric per-channel weights, learned activation step sizes),
// batchnorm folded to a per-channel affine as every engine backend folds it. Each layer writes
// itself into a graph (Export) with the engine's conventions (docs/ir.md).
#pragma once

#include <torch/torch.h>

#include <string>

#include "graph/builder.h"
#include "graph/ir.h"

namespace hybrid::train {

// sign(x) in {-1, +1} with sign(0) = +1; the gradient passes where |x| < 1 (straight-through
// estimator with the gradient zeroed where |x| >= 1).
torch::Tensor SignSte(const torch::Tensor& x);

// Writes modules into a graph: constants from tensors (any dtype, made contiguous f32), names under
// a prefix, nodes in the current partition.
class Exporter {
 public:
  explicit Exporter(graph::GraphBuilder& b) : b_(b) {}
  graph::GraphBuilder& builder() { return b_; }
  // A constant named `name` with `shape` holding t's values in row-major order.
  graph::TensorId Constant(const std::string& name, const graph::Shape& shape,
                           const torch::Tensor& t);

 private:
  graph::GraphBuilder& b_;
};

// Learned step size quantization (LSQ, Esser et al. 2020) of activations to `bits` bits, signed
// ([-2^(b-1), 2^(b-1) - 1]) or unsigned ([0, 2^b - 1]), zero point 0: x -> clamp(round(x / s)) * s
// with ties to even, as the engine quantizes a layer's input. The step size starts at
// 2 mean|x| / sqrt(qmax) on the first batch seen in training.
class ActQuantImpl : public torch::nn::Module {
 public:
  ActQuantImpl(int bits, bool is_signed);
  torch::Tensor forward(const torch::Tensor& x);
  // The integers q = clamp(round(x / s)) (as floats).
  torch::Tensor Integers(const torch::Tensor& x) const;
  // The engine's description of this quantization for a layer with weights of `weight`.
  graph::Quantization Describe(graph::Precision weight) const;
  float step() const { return scale_.item<float>(); }

 private:
  int bits_;
  bool signed_;
  int qmin_, qmax_;
  torch::Tensor scale_;        // parameter, one value
  torch::Tensor initialized_;  // buffer: 0 until the first training batch sets the step size
};
TORCH_MODULE(ActQuant);

struct ConvSpec {
  int in = 1, out = 1, kernel = 3, stride = 1;
  bool bias = false;
  graph::Precision weights = graph::Precision::kF32;
  // Activations: f32, binary (sign), or k-bit through `act` (shared with other layers that read
  // the same tensor, so that they quantize it alike).
  graph::Precision activations = graph::Precision::kF32;
};

// A square convolution with padding kernel / 2 whose weights and input activations have the
// precisions of `spec`. Binary layers pad their sign input with +1 (one-padding); k-bit layers
// pad with 0. In eval mode, quantized layers compute integer sums times one scale per channel, the
// engine's arithmetic.
class QConv2dImpl : public torch::nn::Module {
 public:
  QConv2dImpl(const ConvSpec& spec, ActQuant act = nullptr);
  torch::Tensor forward(const torch::Tensor& x);
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId x);
  const ConvSpec& spec() const { return spec_; }

 private:
  // Per output channel: mean|w| (binary, summed in double as the engine) or max|w| / levels.
  torch::Tensor WeightScales() const;
  ConvSpec spec_;
  torch::Tensor weight_, bias_;
  ActQuant act_{nullptr};
};
TORCH_MODULE(QConv2d);

// Batchnorm over channels; in eval mode y = x * s + t with s, t folded in double as the engine
// folds them, two roundings.
class BatchNormImpl : public torch::nn::Module {
 public:
  explicit BatchNormImpl(int channels);
  torch::Tensor forward(const torch::Tensor& x);
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId x);

 private:
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(BatchNorm);

// A dense layer in f32 (the heads and the router).
class DenseImpl : public torch::nn::Module {
 public:
  DenseImpl(int in, int out);
  torch::Tensor forward(const torch::Tensor& x);
  graph::TensorId Export(Exporter& e, const std::string& name, graph::TensorId x);
  const torch::Tensor& weight() const { return linear_->weight; }
  const torch::Tensor& bias() const { return linear_->bias; }

 private:
  torch::nn::Linear linear_{nullptr};
};
TORCH_MODULE(Dense);

}  // namespace hybrid::train
