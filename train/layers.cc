#include "train/layers.h"

#include <cmath>
#include <vector>

namespace hybrid::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct SignFn : torch::autograd::Function<SignFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    // 1 - 2 [x < 0]: exactly -1 or +1, +1 at zero (and NaN), as the engine packs bits.
    return 1 - 2 * (x < 0).to(x.scalar_type());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    return {grad[0] * (x.abs() < 1).to(grad[0].scalar_type())};
  }
};

// LSQ: forward clamp(round(x / s), qmin, qmax) * s; gradients as in Esser et al.: x passes inside
// the range, s gets (round(v) - v) inside and the bound outside, scaled by g.
struct LsqFn : torch::autograd::Function<LsqFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& s,
                               double qmin, double qmax, double g) {
    ctx->save_for_backward({x, s});
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    ctx->saved_data["g"] = g;
    return torch::clamp(torch::round(x / s), qmin, qmax) * s;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& s = saved[1];
    const double qmin = ctx->saved_data["qmin"].toDouble();
    const double qmax = ctx->saved_data["qmax"].toDouble();
    const double g = ctx->saved_data["g"].toDouble();
    const torch::Tensor v = x / s;
    const torch::Tensor below = v<qmin, above = v> qmax;
    const torch::Tensor inside = ~(below | above);
    const torch::Tensor dx = grad[0] * inside.to(grad[0].scalar_type());
    torch::Tensor ds_elem =
        torch::where(inside, torch::round(v) - v,
                     torch::where(below, torch::full_like(v, qmin), torch::full_like(v, qmax)));
    const torch::Tensor ds = (grad[0] * ds_elem).sum().reshape(s.sizes()) * g;
    return {dx, ds, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

std::vector<float> Values(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

torch::Tensor SignSte(const torch::Tensor& x) { return SignFn::apply(x); }

graph::TensorId Exporter::Constant(const std::string& name, const graph::Shape& shape,
                                   const torch::Tensor& t) {
  return b_.Constant(name, shape, Values(t));
}

ActQuantImpl::ActQuantImpl(int bits, bool is_signed)
    : bits_(bits),
      signed_(is_signed),
      qmin_(is_signed ? -(1 << (bits - 1)) : 0),
      qmax_(is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1) {
  scale_ = register_parameter("scale", torch::ones({1}));
  initialized_ = register_buffer("initialized", torch::zeros({1}));
}

torch::Tensor ActQuantImpl::forward(const torch::Tensor& x) {
  if (is_training() && initialized_.item<float>() == 0.f) {
    torch::NoGradGuard no_grad;
    scale_.fill_(std::max(2 * x.abs().mean().item<double>() / std::sqrt(double(qmax_)), 1e-4));
    initialized_.fill_(1);
  }
  const double g = 1.0 / std::sqrt(static_cast<double>(x.numel()) / x.size(0) * qmax_);
  return LsqFn::apply(x, scale_, qmin_, qmax_, g);
}

torch::Tensor ActQuantImpl::Integers(const torch::Tensor& x) const {
  return torch::clamp(torch::round(x / scale_.detach()), qmin_, qmax_);
}

graph::Quantization ActQuantImpl::Describe(graph::Precision weight) const {
  graph::Quantization q;
  q.weight_precision = weight;
  q.activation_precision = bits_ == 8   ? graph::Precision::kInt8
                           : bits_ == 4 ? graph::Precision::kInt4
                                        : graph::Precision::kInt2;
  q.act_scale = step();
  q.act_zero_point = 0;
  q.act_signed = signed_;
  return q;
}

QConv2dImpl::QConv2dImpl(const ConvSpec& spec, ActQuant act) : spec_(spec) {
  weight_ =
      register_parameter("weight", torch::empty({spec.out, spec.in, spec.kernel, spec.kernel}));
  torch::nn::init::kaiming_normal_(weight_, 0, torch::kFanOut, torch::kReLU);
  if (spec.bias) bias_ = register_parameter("bias", torch::zeros({spec.out}));
  const bool kbit =
      spec.activations != graph::Precision::kF32 && spec.activations != graph::Precision::kBinary;
  if (kbit) {
    act_ = act ? act : ActQuant(graph::Bits(spec.activations), true);
    register_module("act", act_);
  }
}

torch::Tensor QConv2dImpl::WeightScales() const {
  const torch::Tensor w = weight_.detach().flatten(1);
  if (spec_.weights == graph::Precision::kBinary) {
    return (w.to(torch::kFloat64).abs().sum(1) / static_cast<double>(w.size(1)))
        .to(torch::kFloat32);
  }
  const float levels = static_cast<float>((1 << (graph::Bits(spec_.weights) - 1)) - 1);
  return w.abs().amax(1) / levels;
}

torch::Tensor QConv2dImpl::forward(const torch::Tensor& x) {
  const int pad = spec_.kernel / 2;
  auto conv = [&](const torch::Tensor& in, const torch::Tensor& w, int padding) {
    return torch::conv2d(in, w, {}, spec_.stride, padding);
  };
  auto per_channel = [](const torch::Tensor& t) { return t.reshape({1, -1, 1, 1}); };
  torch::Tensor y;
  if (spec_.weights == graph::Precision::kF32 && spec_.activations == graph::Precision::kF32) {
    y = conv(x, weight_, pad);
  } else if (spec_.weights == graph::Precision::kBinary) {
    // Signs against signs: the sums are exact integers, times mean|w| per channel.
    const torch::Tensor xs = torch::constant_pad_nd(SignSte(x), {pad, pad, pad, pad}, 1.0);
    const torch::Tensor alpha = is_training() ? weight_.abs().flatten(1).mean(1) : WeightScales();
    y = conv(xs, SignSte(weight_), 0) * per_channel(alpha);
  } else {
    const torch::Tensor scale = WeightScales();
    const float levels = static_cast<float>((1 << (graph::Bits(spec_.weights) - 1)) - 1);
    // An all-zero channel has scale 0 and integer weights 0, as in the engine.
    const torch::Tensor s4 = scale.view({-1, 1, 1, 1});
    const torch::Tensor wq =
        torch::where(s4 > 0, torch::clamp(torch::round(weight_.detach() / s4), -levels, levels),
                     torch::zeros_like(weight_));
    if (is_training()) {
      // Fake quantization with straight-through gradients for the weights.
      const torch::Tensor w = weight_ + (wq * scale.view({-1, 1, 1, 1}) - weight_).detach();
      y = conv(act_->forward(x), w, pad);
    } else {
      // The engine's integer layer: sum of q_x * q_w, times act_scale * scale_c.
      const torch::Tensor mul = act_->step() * scale;
      y = conv(act_->Integers(x), wq, pad) * per_channel(mul);
    }
  }
  if (bias_.defined()) y = y + per_channel(bias_);
  return y;
}

graph::TensorId QConv2dImpl::Export(Exporter& e, const std::string& name, graph::TensorId x) {
  graph::Conv2dAttrs a;
  a.kernel_h = a.kernel_w = spec_.kernel;
  a.stride_h = a.stride_w = spec_.stride;
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = spec_.kernel / 2;
  if (spec_.weights == graph::Precision::kBinary) {
    a.quant.weight_precision = a.quant.activation_precision = graph::Precision::kBinary;
    a.pad_value = 1.f;  // the sign input is padded with +1
  } else if (act_) {
    a.quant = act_->Describe(spec_.weights);
  } else {
    a.quant.weight_precision = spec_.weights;
  }
  // Torch weights [O][I][KH][KW] -> the engine's [O][KH][KW][I].
  const graph::TensorId w =
      e.Constant(name + ".w", {spec_.out, spec_.kernel, spec_.kernel, spec_.in},
                 weight_.permute({0, 2, 3, 1}));
  const graph::TensorId b =
      bias_.defined() ? e.Constant(name + ".b", {spec_.out}, bias_) : graph::TensorId{-1};
  return e.builder().Conv2d(name, x, w, b, a);
}

BatchNormImpl::BatchNormImpl(int channels) {
  bn_ = register_module("bn", torch::nn::BatchNorm2d(channels));
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& x) {
  if (is_training()) return bn_->forward(x);
  // The engine's folding: s = gamma / sqrt(var + eps) in double, t = beta - mean * s.
  const double eps = bn_->options.eps();
  const torch::Tensor gamma = bn_->weight.detach().to(torch::kFloat64);
  const torch::Tensor var = bn_->running_var.to(torch::kFloat64);
  const torch::Tensor s = gamma / torch::sqrt(var + static_cast<double>(static_cast<float>(eps)));
  const torch::Tensor t =
      bn_->bias.detach().to(torch::kFloat64) - bn_->running_mean.to(torch::kFloat64) * s;
  const torch::Tensor sf = s.to(torch::kFloat32).reshape({1, -1, 1, 1});
  const torch::Tensor tf = t.to(torch::kFloat32).reshape({1, -1, 1, 1});
  return x * sf + tf;
}

graph::TensorId BatchNormImpl::Export(Exporter& e, const std::string& name, graph::TensorId x) {
  const int c = static_cast<int>(bn_->weight.size(0));
  return e.builder().BatchNorm(name, x, e.Constant(name + ".gamma", {c}, bn_->weight),
                               e.Constant(name + ".beta", {c}, bn_->bias),
                               e.Constant(name + ".mean", {c}, bn_->running_mean),
                               e.Constant(name + ".var", {c}, bn_->running_var),
                               static_cast<float>(bn_->options.eps()));
}

DenseImpl::DenseImpl(int in, int out) {
  linear_ = register_module("linear", torch::nn::Linear(in, out));
}

torch::Tensor DenseImpl::forward(const torch::Tensor& x) { return linear_->forward(x); }

graph::TensorId DenseImpl::Export(Exporter& e, const std::string& name, graph::TensorId x) {
  const int out = static_cast<int>(linear_->weight.size(0));
  const int in = static_cast<int>(linear_->weight.size(1));
  return e.builder().Dense(name, x, e.Constant(name + ".w", {out, in}, linear_->weight),
                           e.Constant(name + ".b", {out}, linear_->bias));
}

}  // namespace hybrid::train
