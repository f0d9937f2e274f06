#include "train/net.h"

#include <cmath>

namespace hybrid::train {
namespace {

graph::TensorId Relu(Exporter& e, const std::string& name, graph::TensorId x) {
  return e.builder().Op(name, graph::OpType::kRelu, {x});
}

graph::TensorId AvgPool(Exporter& e, const std::string& name, graph::TensorId x, int k) {
  graph::Pool2dAttrs a;
  a.kernel_h = a.kernel_w = k;
  a.stride_h = a.stride_w = k;
  return e.builder().Pool(name, graph::OpType::kAvgPool2d, x, a);
}

}  // namespace

BlockImpl::BlockImpl(int in, int out, int stride, graph::Precision precision, bool int8_input)
    : quantized_(precision != graph::Precision::kF32) {
  const bool reshape = stride != 1 || in != out;
  if (!quantized_) {
    ConvSpec c1{in, out, 3, stride};
    ConvSpec sc{in, out, 1, stride};
    ActQuant shared{nullptr};
    if (int8_input) {
      // The convolutions reading the split quantize it alike: the edge sends it as int8.
      shared = ActQuant(8, true);
      c1.weights = c1.activations = sc.weights = sc.activations = graph::Precision::kInt8;
    }
    conv1_ = register_module("conv1", QConv2d(c1, shared));
    bn1_ = register_module("bn1", BatchNorm(out));
    conv2_ = register_module("conv2", QConv2d(ConvSpec{out, out, 3, 1}));
    bn2_ = register_module("bn2", BatchNorm(out));
    if (reshape) {
      shortcut_ = register_module("shortcut", QConv2d(sc, shared));
      shortcut_bn_ = register_module("shortcut_bn", BatchNorm(out));
    }
    return;
  }
  for (int i = 0; i < 2; ++i) {
    Unit& u = units_[i];
    const int ci = i == 0 ? in : out;
    const std::string n = "unit" + std::to_string(i);
    u.pre = register_module(n + "_pre", BatchNorm(ci));
    u.conv = register_module(n + "_conv", QConv2d(ConvSpec{ci, out, 3, i == 0 ? stride : 1, false,
                                                           precision, precision}));
    u.post = register_module(n + "_post", BatchNorm(out));
    if (i == 0 && reshape) {
      u.pool = stride != 1;
      u.shortcut = register_module(n + "_shortcut", QConv2d(ConvSpec{in, out, 1, 1}));
      u.shortcut_bn = register_module(n + "_shortcut_bn", BatchNorm(out));
    }
  }
}

torch::Tensor BlockImpl::UnitForward(Unit& u, const torch::Tensor& x) {
  torch::Tensor shortcut = x;
  if (u.shortcut) {
    shortcut = u.pool ? torch::avg_pool2d(x, 2, 2) : x;
    shortcut = u.shortcut_bn->forward(u.shortcut->forward(shortcut));
  }
  return shortcut + u.post->forward(u.conv->forward(u.pre->forward(x)));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  if (quantized_) return UnitForward(units_[1], UnitForward(units_[0], x));
  torch::Tensor h = torch::relu(bn1_->forward(conv1_->forward(x)));
  h = bn2_->forward(conv2_->forward(h));
  const torch::Tensor shortcut = shortcut_ ? shortcut_bn_->forward(shortcut_->forward(x)) : x;
  return torch::relu(h + shortcut);
}

graph::TensorId BlockImpl::UnitExport(Unit& u, Exporter& e, const std::string& name,
                                      graph::TensorId x) {
  graph::TensorId shortcut = x;
  if (u.shortcut) {
    if (u.pool) shortcut = AvgPool(e, name + ".pool", x, 2);
    shortcut = u.shortcut->Export(e, name + ".shortcut", shortcut);
    shortcut = u.shortcut_bn->Export(e, name + ".shortcut_bn", shortcut);
  }
  graph::TensorId h = u.pre->Export(e, name + ".pre", x);
  h = u.conv->Export(e, name + ".conv", h);
  h = u.post->Export(e, name + ".post", h);
  return e.builder().Op(name + ".add", graph::OpType::kAdd, {shortcut, h});
}

graph::TensorId BlockImpl::Export(Exporter& e, const std::string& name, graph::TensorId x) {
  if (quantized_) {
    return UnitExport(units_[1], e, name + ".unit1", UnitExport(units_[0], e, name + ".unit0", x));
  }
  graph::TensorId h = conv1_->Export(e, name + ".conv1", x);
  h = Relu(e, name + ".relu1", bn1_->Export(e, name + ".bn1", h));
  h = bn2_->Export(e, name + ".bn2", conv2_->Export(e, name + ".conv2", h));
  graph::TensorId shortcut = x;
  if (shortcut_) {
    shortcut =
        shortcut_bn_->Export(e, name + ".shortcut_bn", shortcut_->Export(e, name + ".shortcut", x));
  }
  return Relu(e, name + ".relu", e.builder().Op(name + ".add", graph::OpType::kAdd, {h, shortcut}));
}

HeadImpl::HeadImpl(const HeadSpec& spec, int channels, int size, int classes)
    : spec_(spec), channels_(channels), pooled_size_(spec.kind == "gap" ? 1 : size / spec.pool) {
  const int features = channels * pooled_size_ * pooled_size_;
  dense_ = register_module("dense", Dense(features, classes));
}

torch::Tensor HeadImpl::forward(const torch::Tensor& x) {
  if (spec_.kind == "gap") return dense_->forward(x.mean({2, 3}));
  return dense_->forward(torch::avg_pool2d(x, spec_.pool, spec_.pool).flatten(1));
}

graph::TensorId HeadImpl::Export(Exporter& e, const std::string& name, graph::TensorId x) {
  graph::TensorId h;
  if (spec_.kind == "gap") {
    h = e.builder().Op(name + ".gap", graph::OpType::kGlobalAvgPool, {x});
    return dense_->Export(e, name + ".dense", h);
  }
  h = e.builder().Op(name + ".flatten", graph::OpType::kFlatten,
                     {AvgPool(e, name + ".pool", x, spec_.pool)});
  // Torch flattens [C][h][w], the engine NHWC [h][w][C]: reorder the dense layer's inputs.
  torch::NoGradGuard no_grad;
  auto params = dense_->named_parameters();
  const torch::Tensor w = params["linear.weight"];
  const torch::Tensor b = params["linear.bias"];
  const int classes = static_cast<int>(w.size(0));
  const torch::Tensor wr = w.reshape({classes, channels_, pooled_size_, pooled_size_})
                               .permute({0, 2, 3, 1})
                               .reshape({classes, -1});
  const int features = static_cast<int>(wr.size(1));
  return e.builder().Dense(name + ".dense", h,
                           e.Constant(name + ".dense.w", {classes, features}, wr),
                           e.Constant(name + ".dense.b", {classes}, b));
}

NetImpl::NetImpl(const NetSpec& spec, int in_channels, int size, int classes,
                 const std::vector<ExitSpec>& exits, int int8_stage)
    : exit_specs_(exits) {
  stem_ = register_module("stem", QConv2d(ConvSpec{in_channels, spec.stem_channels, 3, 1}));
  stem_bn_ = register_module("stem_bn", BatchNorm(spec.stem_channels));
  int channels = spec.stem_channels;
  std::vector<int> stage_sizes;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const StageSpec& st = spec.stages[s];
    std::vector<Block> blocks;
    for (int b = 0; b < st.blocks; ++b) {
      const int stride = b == 0 ? st.stride : 1;
      const bool int8_input = b == 0 && static_cast<int>(s) == int8_stage;
      blocks.push_back(register_module(
          "stage" + std::to_string(s) + "_block" + std::to_string(b),
          Block(b == 0 ? channels : st.channels, st.channels, stride, st.precision, int8_input)));
      channels = st.channels;
      if (stride == 2) size = (size + 1) / 2;
    }
    stages_.push_back(std::move(blocks));
    stage_sizes.push_back(size);
    for (size_t i = 0; i < exits.size(); ++i) {
      if (exits[i].after_stage != static_cast<int>(s)) continue;
      exits_.push_back(register_module("exit" + std::to_string(i),
                                       Head(exits[i].head, channels, size, classes)));
    }
  }
  head_ = register_module("head", Head(spec.head, channels, size, classes));
}

NetOutputs NetImpl::forward(const torch::Tensor& x) {
  NetOutputs out;
  torch::Tensor h = torch::relu(stem_bn_->forward(stem_->forward(x)));
  size_t next_exit = 0;
  for (size_t s = 0; s < stages_.size(); ++s) {
    for (Block& b : stages_[s]) h = b->forward(h);
    for (size_t i = 0; i < exit_specs_.size(); ++i) {
      if (exit_specs_[i].after_stage == static_cast<int>(s)) {
        out.exits.push_back(exits_[next_exit++]->forward(h));
      }
    }
  }
  out.pooled = h.mean({2, 3});
  out.logits = head_->forward(h);
  return out;
}

ExportedNet NetImpl::Export(Exporter& e, const std::string& prefix, graph::TensorId image,
                            int split_after, bool pooled) {
  graph::GraphBuilder& b = e.builder();
  if (split_after >= 0) b.SetPartition(graph::Partition::kEdge);
  ExportedNet out;
  graph::TensorId h = stem_->Export(e, prefix + "stem", image);
  h = Relu(e, prefix + "stem.relu", stem_bn_->Export(e, prefix + "stem.bn", h));
  size_t next_exit = 0;
  for (size_t s = 0; s < stages_.size(); ++s) {
    if (split_after >= 0 && static_cast<int>(s) == split_after + 1) {
      b.SetPartition(graph::Partition::kCloud);
    }
    for (size_t k = 0; k < stages_[s].size(); ++k) {
      h = stages_[s][k]->Export(e, fmt::format("{}stage{}.block{}", prefix, s, k), h);
    }
    for (size_t i = 0; i < exit_specs_.size(); ++i) {
      if (exit_specs_[i].after_stage == static_cast<int>(s)) {
        out.exits.push_back(exits_[next_exit++]->Export(e, fmt::format("{}exit{}", prefix, i), h));
      }
    }
  }
  if (pooled) out.pooled = b.Op(prefix + "pooled", graph::OpType::kGlobalAvgPool, {h});
  out.logits = head_->Export(e, prefix + "head", h);
  return out;
}

int RouterFeatureCount(int classes, int pooled) {
  const int k = std::min(10, classes);
  return 1 + k * (k - 1) / 2 + pooled;
}

torch::Tensor RouterTarget(const std::string& label, const torch::Tensor& edge_right,
                           const torch::Tensor& cloud_right, const torch::Tensor& edge_p,
                           const torch::Tensor& cloud_p) {
  if (label == "gain") return (1 + cloud_right - edge_right) / 2;
  if (label == "soft-gain" || label == "soft-proxy") {
    TORCH_CHECK(edge_p.defined() && cloud_p.defined(), "router label ", label,
                " needs the edge's and the cloud's probabilities of the right class");
  }
  if (label == "soft-gain") return (1 + cloud_p - edge_p) / 2;
  if (label == "soft-proxy") return (1 - edge_p) * cloud_p;
  return (1 - edge_right) * cloud_right;
}

torch::Tensor RouterFeatures(const torch::Tensor& probs, const torch::Tensor& pooled) {
  const int64_t k = std::min<int64_t>(10, probs.size(1));
  const torch::Tensor entropy = -torch::xlogy(probs, probs).sum(1, true);
  const torch::Tensor top = std::get<0>(probs.sort(1, true)).narrow(1, 0, k);
  std::vector<torch::Tensor> parts = {entropy};
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j < k; ++j) parts.push_back(top.narrow(1, i, 1) - top.narrow(1, j, 1));
  }
  if (pooled.defined()) parts.push_back(pooled);
  return torch::cat(parts, 1);
}

RouterImpl::RouterImpl(int features, const std::vector<int>& hidden) {
  in_mean_ = register_buffer("in_mean", torch::zeros({features}));
  in_inv_std_ = register_buffer("in_inv_std", torch::ones({features}));
  int in = features;
  for (size_t i = 0; i <= hidden.size(); ++i) {
    const int out = i < hidden.size() ? hidden[i] : 1;
    layers_.push_back(register_module("fc" + std::to_string(i), Dense(in, out)));
    in = out;
  }
}

void RouterImpl::Standardize(const torch::Tensor& features) {
  torch::NoGradGuard no_grad;
  in_mean_.copy_(features.mean(0));
  in_inv_std_.copy_(1 / features.std(0).clamp_min(1e-6));
}

std::pair<torch::Tensor, torch::Tensor> RouterImpl::FirstLayer() const {
  const torch::Tensor w = layers_[0]->weight() * in_inv_std_.unsqueeze(0);
  const torch::Tensor b = layers_[0]->bias() - torch::mv(w, in_mean_);
  return {w, b};
}

torch::Tensor RouterImpl::forward(const torch::Tensor& features) {
  auto [w, b] = FirstLayer();
  torch::Tensor h = torch::linear(features, w, b);
  for (size_t i = 1; i < layers_.size(); ++i) {
    h = layers_[i]->forward(torch::relu(h));
  }
  return h.squeeze(1);
}

graph::TensorId RouterImpl::Export(Exporter& e, const std::string& name, graph::TensorId features) {
  torch::NoGradGuard no_grad;
  auto [w, b] = FirstLayer();
  const int out = static_cast<int>(w.size(0)), in = static_cast<int>(w.size(1));
  graph::TensorId h =
      e.builder().Dense(name + ".fc0", features, e.Constant(name + ".fc0.w", {out, in}, w),
                        e.Constant(name + ".fc0.b", {out}, b));
  for (size_t i = 1; i < layers_.size(); ++i) {
    h = Relu(e, fmt::format("{}.relu{}", name, i - 1), h);
    h = layers_[i]->Export(e, fmt::format("{}.fc{}", name, i), h);
  }
  return h;
}

}  // namespace hybrid::train
