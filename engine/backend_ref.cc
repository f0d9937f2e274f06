// The reference backend: plain C++ kernels from kernels/ref.h, the ground truth of every test.
// Quantized layers run as fake quantization in float: weights and activations are rounded to
// their precision's levels, then the float kernel computes with them.
#include <cmath>
#include <vector>

#include "engine/backend.h"
#include "engine/layer_params.h"
#include "kernels/int8.h"
#include "kernels/ref.h"

namespace hybrid::engine {
namespace {

using graph::OpType;
using graph::Precision;

// Rounds activations to the levels of `q.activation_precision` (sign for binary).
class ActivationQuantizer {
 public:
  explicit ActivationQuantizer(const graph::Quantization& q) : q_(q) {
    if (q.activation_precision == Precision::kF32 || q.activation_precision == Precision::kBinary) {
      return;  // no integer levels
    }
    int bits = graph::Bits(q.activation_precision);
    if (q.act_signed) {
      qmin_ = -(1 << (bits - 1));
      qmax_ = (1 << (bits - 1)) - 1;
    } else {
      qmin_ = 0;
      qmax_ = (1 << bits) - 1;
    }
  }
  bool active() const { return q_.activation_precision != Precision::kF32; }
  const graph::Quantization& quantization() const { return q_; }
  void Apply(int64_t n, const float* in, float* out) const {
    if (q_.activation_precision == Precision::kBinary) {
      kernels::SignF32Ref(n, in, out);
    } else {
      kernels::FakeQuantizeActivationsRef(n, q_.act_scale, q_.act_zero_point, qmin_, qmax_, in,
                                          out);
    }
  }

 private:
  graph::Quantization q_;
  int qmin_ = 0, qmax_ = 0;
};

// Weights as the layer uses them, rounded to their precision at plan time. Binary weights are
// kept as signs and their XNOR-Net scales go to `binary_scales`, applied after the sum: the sum of
// signs is an exact integer, so any kernel that counts bits can reproduce the result exactly.
std::vector<float> QuantizedWeights(const graph::Quantization& q, int out_c, int64_t per_channel,
                                    const float* w, std::vector<float>* binary_scales) {
  std::vector<float> out(static_cast<size_t>(out_c * per_channel));
  switch (q.weight_precision) {
    case Precision::kF32:
      std::copy(w, w + out.size(), out.begin());
      break;
    case Precision::kBinary:
      binary_scales->resize(out_c);
      kernels::BinaryWeightScalesRef(out_c, per_channel, w, binary_scales->data());
      kernels::SignF32Ref(static_cast<int64_t>(out.size()), w, out.data());
      break;
    default: {
      std::vector<float> scales(out_c);
      kernels::QuantizeWeightsSymmetricRef(graph::Bits(q.weight_precision), out_c, per_channel, w,
                                           out.data(), scales.data());
    }
  }
  return out;
}

// y = y * scale[c] + bias[c] (bias may be null), two roundings as the native kernels do them.
void ScaleChannels(int64_t n, int channels, const float* scale, const float* bias, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % channels);
    float v = y[i] * scale[c];
    if (bias != nullptr) v = v + bias[c];
    y[i] = v;
  }
}

class ConvKernel : public Kernel {
 public:
  explicit ConvKernel(const NodeContext& ctx) : quant_(ctx.attrs<graph::Conv2dAttrs>().quant) {
    const graph::Shape& x = ctx.input_shapes[0];
    p_ = ConvParamsOf(ctx);
    weights_ = QuantizedWeights(quant_.quantization(), p_.out_c,
                                graph::NumElements(ctx.input_shapes[1]) / p_.out_c, ctx.inputs[1],
                                &binary_scales_);
    bias_ = ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr;
    in_ = ctx.inputs[0];
    out_ = ctx.output;
    pool_ = ctx.pool;
    if (quant_.active()) scratch_.resize(static_cast<size_t>(graph::NumElements(x)));
  }

  Status Run() override {
    const float* x = in_;
    if (quant_.active()) {
      quant_.Apply(static_cast<int64_t>(scratch_.size()), in_, scratch_.data());
      x = scratch_.data();
    }
    auto rows = [&](size_t begin, size_t end) {
      if (binary_scales_.empty()) {
        kernels::Conv2dF32Ref(p_, x, weights_.data(), bias_, out_, static_cast<int>(begin),
                              static_cast<int>(end));
        return;
      }
      kernels::Conv2dF32Ref(p_, x, weights_.data(), nullptr, out_, static_cast<int>(begin),
                            static_cast<int>(end));
      const int64_t per_row = static_cast<int64_t>(p_.out_w) * p_.out_c;
      ScaleChannels(static_cast<int64_t>(end - begin) * per_row, p_.out_c, binary_scales_.data(),
                    bias_, out_ + static_cast<int64_t>(begin) * per_row);
    };
    pool_->ParallelFor(static_cast<size_t>(p_.batch) * p_.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  ActivationQuantizer quant_;
  kernels::Conv2dParams p_;
  std::vector<float> weights_, scratch_, binary_scales_;
  const float* bias_ = nullptr;
  const float* in_ = nullptr;
  float* out_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

class DenseKernel : public Kernel {
 public:
  explicit DenseKernel(const NodeContext& ctx) : quant_(ctx.attrs<graph::DenseAttrs>().quant) {
    const graph::Quantization& q = ctx.attrs<graph::DenseAttrs>().quant;
    batch_ = static_cast<int>(ctx.input_shapes[0][0]);
    in_f_ = static_cast<int>(ctx.input_shapes[0][1]);
    out_f_ = static_cast<int>(ctx.output_shape[1]);
    weights_ = QuantizedWeights(q, out_f_, in_f_, ctx.inputs[1], &binary_scales_);
    bias_ = ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr;
    in_ = ctx.inputs[0];
    out_ = ctx.output;
    pool_ = ctx.pool;
    if (quant_.active()) scratch_.resize(static_cast<size_t>(batch_) * in_f_);
  }

  Status Run() override {
    const float* x = in_;
    if (quant_.active()) {
      quant_.Apply(static_cast<int64_t>(scratch_.size()), in_, scratch_.data());
      x = scratch_.data();
    }
    auto rows = [&](size_t begin, size_t end) {
      if (binary_scales_.empty()) {
        kernels::DenseF32Ref(batch_, in_f_, out_f_, x, weights_.data(), bias_, out_,
                             static_cast<int>(begin), static_cast<int>(end));
        return;
      }
      kernels::DenseF32Ref(batch_, in_f_, out_f_, x, weights_.data(), nullptr, out_,
                           static_cast<int>(begin), static_cast<int>(end));
      ScaleChannels(static_cast<int64_t>(end - begin) * out_f_, out_f_, binary_scales_.data(),
                    bias_, out_ + static_cast<int64_t>(begin) * out_f_);
    };
    pool_->ParallelFor(static_cast<size_t>(batch_), 1, rows);
    return Status::Ok();
  }

 private:
  ActivationQuantizer quant_;
  int batch_ = 0, in_f_ = 0, out_f_ = 0;
  std::vector<float> weights_, scratch_, binary_scales_;
  const float* bias_ = nullptr;
  const float* in_ = nullptr;
  float* out_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

kernels::Pool2dParams PoolParams(const NodeContext& ctx) {
  const auto& a = ctx.attrs<graph::Pool2dAttrs>();
  const graph::Shape& x = ctx.input_shapes[0];
  kernels::Pool2dParams p{};
  p.batch = static_cast<int>(x[0]);
  p.in_h = static_cast<int>(x[1]);
  p.in_w = static_cast<int>(x[2]);
  p.channels = static_cast<int>(x[3]);
  p.out_h = static_cast<int>(ctx.output_shape[1]);
  p.out_w = static_cast<int>(ctx.output_shape[2]);
  p.kernel_h = a.kernel_h;
  p.kernel_w = a.kernel_w;
  p.stride_h = a.stride_h;
  p.stride_w = a.stride_w;
  p.pad_top = a.pad_top;
  p.pad_left = a.pad_left;
  p.count_include_pad = a.count_include_pad;
  return p;
}

// Kernels whose whole work is one call over bound buffers and plan-time parameters.
template <typename F>
class CallKernel : public Kernel {
 public:
  explicit CallKernel(F f) : f_(std::move(f)) {}
  Status Run() override {
    f_();
    return Status::Ok();
  }

 private:
  F f_;
};

template <typename F>
std::unique_ptr<Kernel> MakeCall(F f) {
  return std::make_unique<CallKernel<F>>(std::move(f));
}

// A layer with k-bit weights and k-bit activations: activations quantized to u8, integer sums
// by the reference twin of the native kernel, one scale per output channel.
class IntegerKernel : public Kernel {
 public:
  explicit IntegerKernel(const NodeContext& ctx)
      : layer_(MakeIntegerLayer(ctx)), in_(ctx.inputs[0]), pool_(ctx.pool) {
    const kernels::Conv2dParams& p = layer_.p;
    pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    quantized_.resize(static_cast<size_t>(pixels_) * p.groups *
                      kernels::Int8Channels(p.in_c / p.groups));
    output_.data = ctx.output;
    output_.transform.mul = layer_.mul.data();
    output_.transform.bias = ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr;
  }

  Status Run() override {
    const kernels::Conv2dParams& p = layer_.p;
    kernels::QuantizeU8Ref(pixels_, p.in_c, p.groups, layer_.act, in_, quantized_.data());
    auto rows = [&](size_t begin, size_t end) {
      kernels::Int8Conv2dRef(p, quantized_.data(), layer_.pad_pixel.data(), layer_.weights.data(),
                             layer_.act.input_zero(), output_, static_cast<int>(begin),
                             static_cast<int>(end));
    };
    pool_->ParallelFor(static_cast<size_t>(p.batch) * p.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  IntegerLayer layer_;
  std::vector<uint8_t> quantized_;
  kernels::ConvOutput output_;
  int64_t pixels_ = 0;
  const float* in_;
  ThreadPool* pool_;
};

class RefBackend : public Backend {
 public:
  std::string_view name() const override { return "ref"; }

  Status Supports(const graph::Graph&, const graph::Node&) const override { return Status::Ok(); }

  Result<std::unique_ptr<Kernel>> Plan(const NodeContext& ctx) override {
    const graph::Node& node = *ctx.node;
    const float* x = ctx.inputs[0];
    float* y = ctx.output;
    const graph::Shape& xs = ctx.input_shapes[0];
    int64_t n = graph::NumElements(ctx.output_shape);
    int channels = static_cast<int>(xs.back());
    switch (node.op) {
      case OpType::kConv2d:
        if (IsIntegerLayer(*QuantizationOf(node))) {
          return std::unique_ptr<Kernel>(std::make_unique<IntegerKernel>(ctx));
        }
        return std::unique_ptr<Kernel>(std::make_unique<ConvKernel>(ctx));
      case OpType::kDense:
        if (IsIntegerLayer(*QuantizationOf(node))) {
          return std::unique_ptr<Kernel>(std::make_unique<IntegerKernel>(ctx));
        }
        return std::unique_ptr<Kernel>(std::make_unique<DenseKernel>(ctx));
      case OpType::kBatchNorm: {
        std::vector<float> scale, shift;
        FoldBatchNorm(*ctx.graph, node, channels, &scale, &shift);
        return MakeCall([=, scale = std::move(scale), shift = std::move(shift)] {
          kernels::ChannelAffineF32Ref(n, channels, x, scale.data(), shift.data(), y);
        });
      }
      case OpType::kRelu:
        return MakeCall([=] { kernels::ReluF32Ref(n, x, y); });
      case OpType::kPrelu: {
        const float* slope = ctx.inputs[1];
        int slope_c = static_cast<int>(ctx.input_shapes[1][0]);
        if (slope_c == 1) {
          return MakeCall([=] { kernels::PreluF32Ref(n, 1, x, slope, y); });
        }
        return MakeCall([=] { kernels::PreluF32Ref(n, channels, x, slope, y); });
      }
      case OpType::kHardtanh: {
        auto a = ctx.attrs<graph::HardtanhAttrs>();
        return MakeCall([=] { kernels::HardtanhF32Ref(n, a.min_val, a.max_val, x, y); });
      }
      case OpType::kSign:
        return MakeCall([=] { kernels::SignF32Ref(n, x, y); });
      case OpType::kAdd: {
        const float* b = ctx.inputs[1];
        return MakeCall([=] { kernels::AddF32Ref(n, x, b, y); });
      }
      case OpType::kMaxPool2d: {
        kernels::Pool2dParams p = PoolParams(ctx);
        return MakeCall([=] { kernels::MaxPool2dF32Ref(p, x, y); });
      }
      case OpType::kAvgPool2d: {
        kernels::Pool2dParams p = PoolParams(ctx);
        return MakeCall([=] { kernels::AvgPool2dF32Ref(p, x, y); });
      }
      case OpType::kGlobalAvgPool: {
        int batch = static_cast<int>(xs[0]);
        int hw = static_cast<int>(xs[1] * xs[2]);
        return MakeCall([=] { kernels::GlobalAvgPoolF32Ref(batch, hw, channels, x, y); });
      }
      case OpType::kFlatten:
        return MakeFlattenKernel(x, y, static_cast<size_t>(n));
      case OpType::kSoftmax: {
        int last = static_cast<int>(ctx.output_shape.back());
        int64_t outer = n / last;
        return MakeCall([=] { kernels::SoftmaxF32Ref(outer, last, x, y); });
      }
      case OpType::kConcat: {
        const graph::Shape& out = ctx.output_shape;
        int axis = ctx.attrs<graph::ConcatAttrs>().axis;
        if (axis < 0) axis += static_cast<int>(out.size());
        int64_t outer = 1;
        for (int d = 0; d < axis; ++d) outer *= out[d];
        std::vector<int64_t> inner;
        for (const graph::Shape& s : ctx.input_shapes)
          inner.push_back(graph::NumElements(s) / outer);
        std::vector<const float*> ins = ctx.inputs;
        return MakeCall([=, inner = std::move(inner), ins = std::move(ins)] {
          kernels::ConcatF32Ref(outer, static_cast<int>(ins.size()), ins.data(), inner.data(), y);
        });
      }
    }
    return Error("ref backend: unknown op");
  }
};

}  // namespace

std::unique_ptr<Backend> MakeRefBackend() { return std::make_unique<RefBackend>(); }

}  // namespace hybrid::engine
