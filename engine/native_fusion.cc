#include "engine/native_fusion.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "engine/layer_params.h"
#include "kernels/binary.h"
#include "kernels/ref.h"

namespace hybrid::engine::native {

using graph::OpType;

bool IsChannelwise(const graph::Graph& g, const graph::Node& node) {
  switch (node.op) {
    case OpType::kBatchNorm:
    case OpType::kRelu:
    case OpType::kPrelu:
    case OpType::kHardtanh:
    case OpType::kSign:
      break;
    default:
      return false;
  }
  for (size_t i = 1; i < node.inputs.size(); ++i) {
    if (!g.tensors[node.inputs[i]].is_constant()) return false;
  }
  return true;
}

ChannelSteps::ChannelSteps(const graph::Graph& g, const std::vector<const graph::Node*>& nodes,
                           int channels) {
  for (const graph::Node* n : nodes) {
    Step s{n->op, {}, {}};
    switch (n->op) {
      case OpType::kBatchNorm:
        FoldBatchNorm(g, *n, channels, &s.a, &s.b);
        break;
      case OpType::kPrelu: {
        const graph::Tensor& slope = g.tensors[n->inputs[1]];
        const float* v = g.ConstantData<float>(n->inputs[1]);
        const bool shared = graph::NumElements(slope.shape) == 1;
        for (int c = 0; c < channels; ++c) s.a.push_back(v[shared ? 0 : c]);
        break;
      }
      case OpType::kHardtanh: {
        const auto& a = std::get<graph::HardtanhAttrs>(n->attrs);
        s.lo = a.min_val;
        s.hi = a.max_val;
        break;
      }
      default:
        break;
    }
    steps_.push_back(std::move(s));
  }
}

float ChannelSteps::Apply(int c, float x) const {
  for (const Step& s : steps_) {
    switch (s.op) {
      case OpType::kBatchNorm:
        kernels::ChannelAffineF32Ref(1, 1, &x, &s.a[c], &s.b[c], &x);
        break;
      case OpType::kRelu:
        kernels::ReluF32Ref(1, &x, &x);
        break;
      case OpType::kPrelu:
        kernels::PreluF32Ref(1, 1, &x, &s.a[c], &x);
        break;
      case OpType::kHardtanh:
        kernels::HardtanhF32Ref(1, s.lo, s.hi, &x, &x);
        break;
      case OpType::kSign:
        kernels::SignF32Ref(1, &x, &x);
        break;
      default:
        break;
    }
  }
  return x;
}

bool IntegerThresholds(int channels, int32_t k, const std::function<float(int, int32_t)>& f,
                       std::vector<int32_t>* threshold, std::vector<uint8_t>* flip) {
  threshold->assign(channels, 0);
  flip->assign(channels, 0);
  for (int c = 0; c < channels; ++c) {
    // Every sum the layer can produce, so that the thresholds are exact whatever f is.
    const bool first = f(c, -k) < 0.f;
    bool prev = first;
    int changes = 0;
    int32_t boundary = 0;  // the first sum answering unlike -k
    for (int32_t d = -k + 1; d <= k; ++d) {
      const bool bit = f(c, d) < 0.f;
      if (bit == prev) continue;
      if (++changes > 1) return false;
      boundary = d;
      prev = bit;
    }
    if (changes == 0) {
      (*threshold)[c] =
          first ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min();
    } else if (first) {
      (*threshold)[c] = boundary;  // bit 1 for d < boundary
    } else {
      // Bit 1 for d >= boundary, that is -d < 1 - boundary: negate the channel's weights.
      (*flip)[c] = 1;
      (*threshold)[c] = 1 - boundary;
    }
  }
  return true;
}

namespace {

// Floats in their order as 32-bit integers: -inf < ... < -0 = +0 < ... < +inf.
int64_t KeyOf(float x) {
  const auto u = std::bit_cast<uint32_t>(x);
  return (u >> 31) != 0 ? -static_cast<int64_t>(u & 0x7FFFFFFFu) : static_cast<int64_t>(u);
}
float FromKey(int64_t key) {
  return key >= 0 ? std::bit_cast<float>(static_cast<uint32_t>(key))
                  : std::bit_cast<float>(static_cast<uint32_t>(-key) | 0x80000000u);
}

}  // namespace

bool FloatThresholds(int channels, const std::function<float(int, float)>& f,
                     std::vector<float>* below, std::vector<float>* above) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const int64_t lo_key = KeyOf(-kInf), hi_key = KeyOf(kInf);
  below->assign(channels, -kInf);
  above->assign(channels, kInf);
  for (int c = 0; c < channels; ++c) {
    auto bit = [&](int64_t key) { return f(c, FromKey(key)) < 0.f; };
    const bool at_lo = bit(lo_key), at_hi = bit(hi_key);
    if (at_lo && at_hi) {
      (*below)[c] = kInf;  // every number: x < +inf or x > -inf
      (*above)[c] = -kInf;
    } else if (at_lo != at_hi) {
      // Bisect for the two neighbouring keys where the answer changes.
      int64_t a = lo_key, b = hi_key;
      while (b - a > 1) {
        const int64_t m = a + (b - a) / 2;
        (bit(m) == at_lo ? a : b) = m;
      }
      if (at_lo) {
        (*below)[c] = FromKey(b);  // bit 1 below the first key answering 0
      } else {
        (*above)[c] = FromKey(a);  // bit 1 above the last key answering 0
      }
    }
    // Monotone functions give the right answer everywhere; check where others would not.
    std::vector<float> probes = {-kInf,
                                 kInf,
                                 -std::numeric_limits<float>::max(),
                                 std::numeric_limits<float>::max(),
                                 -1.f,
                                 1.f,
                                 0.f,
                                 -0.f,
                                 std::numeric_limits<float>::denorm_min(),
                                 -std::numeric_limits<float>::denorm_min(),
                                 std::numeric_limits<float>::quiet_NaN()};
    for (float bound : {(*below)[c], (*above)[c]}) {
      for (int64_t dk = -2; dk <= 2; ++dk) {
        probes.push_back(FromKey(std::clamp(KeyOf(bound) + dk, lo_key, hi_key)));
      }
    }
    for (float x : probes) {
      const bool want = f(c, x) < 0.f;
      const bool got = x < (*below)[c] || x > (*above)[c];
      if (want != got) return false;
    }
  }
  return true;
}

namespace {

bool IsActivation(OpType op) {
  return op == OpType::kRelu || op == OpType::kHardtanh || op == OpType::kPrelu;
}

// The groups of a layer's input: the packing layout it reads.
int InputGroups(const graph::Node& layer) {
  return layer.op == OpType::kConv2d ? std::get<graph::Conv2dAttrs>(layer.attrs).groups : 1;
}

bool SameQuant(const kernels::ActivationQuant& a, const kernels::ActivationQuant& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point && a.qmin == b.qmin &&
         a.qmax == b.qmax && a.offset == b.offset;
}

kernels::OutputKind HeldKind(LayerInput in) {
  switch (in) {
    case LayerInput::kU8:
      return kernels::OutputKind::kU8;
    case LayerInput::kPlanes2:
      return kernels::OutputKind::kPlanes2;
    default:
      return kernels::OutputKind::kBits;
  }
}

// The graph around the nodes a plan runs.
struct Neighbours {
  std::vector<bool> in_steps;
  std::vector<std::vector<int>> consumers;  // per tensor, every node of the graph reading it
  std::vector<int> producer;                // per tensor, the step writing it, or -1
  const std::vector<bool>* readable;

  Neighbours(const PlanScope& scope) : readable(&scope.readable) {
    const graph::Graph& g = *scope.graph;
    in_steps.assign(g.nodes.size(), false);
    consumers.resize(g.tensors.size());
    producer.assign(g.tensors.size(), -1);
    for (int s : scope.steps) {
      in_steps[s] = true;
      producer[g.nodes[s].outputs[0]] = s;
    }
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      for (graph::TensorId t : g.nodes[n].inputs) consumers[t].push_back(static_cast<int>(n));
    }
  }
  // A tensor a chain may pass through: written in the plan, read by one node, kept by nobody.
  bool Inner(graph::TensorId t) const {
    return producer[t] >= 0 && consumers[t].size() == 1 && !(*readable)[t];
  }
};

// The channelwise nodes [batchnorm] [activation] a layer's float transform applies, walking
// back from `t`: the layer and the nodes in order, or layer -1.
std::pair<int, std::vector<int>> TransformChainTo(const graph::Graph& g, const Neighbours& nb,
                                                  const std::vector<bool>& claimed,
                                                  graph::TensorId t) {
  std::vector<int> ops;
  graph::TensorId cur = t;
  while (nb.producer[cur] >= 0 && !claimed[nb.producer[cur]]) {
    const int p = nb.producer[cur];
    const graph::Node& n = g.nodes[p];
    if (!IsChannelwise(g, n)) return {p, ops};
    // Backwards: an activation only first, a batchnorm only before any other batchnorm.
    const bool fits =
        (n.op == OpType::kBatchNorm && (ops.empty() || g.nodes[ops[0]].op != OpType::kBatchNorm)) ||
        (IsActivation(n.op) && ops.empty());
    if (!fits) break;
    ops.insert(ops.begin(), p);
    cur = n.inputs[0];
    if (!nb.Inner(cur)) break;
  }
  return {-1, ops};
}

}  // namespace

NativePlan PlanNativeFusion(const PlanScope& scope,
                            const std::function<LayerInput(const graph::Node&)>& input_of) {
  const graph::Graph& g = *scope.graph;
  const std::vector<graph::Shape>& shapes = *scope.shapes;
  const Neighbours nb(scope);
  std::vector<bool> claimed(g.nodes.size(), false);
  NativePlan plan;
  auto hold = [&](graph::TensorId t, LayerInput in, int groups,
                  const kernels::ActivationQuant& quant) {
    HeldTensor& h = plan.held[t];
    h.tensor = t;
    h.kind = HeldKind(in);
    h.channels = static_cast<int>(shapes[t].back());
    h.groups = groups;
    h.quant = quant;
    h.pixels = graph::NumElements(shapes[t]) / h.channels;
    kernels::ConvOutput layout;
    layout.kind = h.kind;
    layout.groups = groups;
    const int64_t bytes = h.pixels * kernels::OutputPixelBytes(layout, h.channels);
    h.storage.assign(static_cast<size_t>((bytes + 7) / 8), 0);
    plan.fusion.internal.push_back(t);
  };

  // 1. Tensors read only by native layers of one kind, in one layout, travel in the form those
  // layers read: from the layer that computes them (bits through thresholds on its sums; bytes or
  // planes through its transform and the consumers' quantization), or bitpacked from a float
  // tensor through thresholds.
  for (int s : scope.steps) {
    const graph::TensorId t = g.nodes[s].outputs[0];
    if (scope.readable[t] || nb.consumers[t].empty()) continue;
    LayerInput in = LayerInput::kNone;
    int groups = -1;
    kernels::ActivationQuant quant;
    bool alike = true;
    for (int c : nb.consumers[t]) {
      const graph::Node& layer = g.nodes[c];
      const LayerInput ci = input_of(layer);
      const kernels::ActivationQuant cq = ci == LayerInput::kU8 || ci == LayerInput::kPlanes2
                                              ? ActivationQuantOf(*QuantizationOf(layer))
                                              : kernels::ActivationQuant{};
      alike = alike && nb.in_steps[c] && ci != LayerInput::kNone && layer.inputs[0] == t &&
              (in == LayerInput::kNone ||
               (in == ci && groups == InputGroups(layer) && SameQuant(quant, cq)));
      for (size_t i = 1; i < layer.inputs.size(); ++i) alike = alike && layer.inputs[i] != t;
      in = ci;
      groups = InputGroups(layer);
      quant = cq;
    }
    if (!alike) continue;
    const int channels = static_cast<int>(shapes[t].back());
    if (in != LayerInput::kBits) {
      // Quantized: a native layer with its float transform, then the consumers' quantization.
      auto [layer, ops] = TransformChainTo(g, nb, claimed, t);
      if (layer < 0 || claimed[layer] || input_of(g.nodes[layer]) == LayerInput::kNone) continue;
      kernels::ConvOutput layout;
      layout.kind = HeldKind(in);
      layout.groups = groups;
      if (!kernels::OutputLayoutSupported(layout, channels, InputGroups(g.nodes[layer]))) continue;
      std::vector<int> chain = {layer};
      chain.insert(chain.end(), ops.begin(), ops.end());
      for (int n : chain) claimed[n] = true;
      if (chain.size() > 1) plan.fusion.chains.push_back(chain);
      plan.producers[layer] = NativePlan::Producer{t, {}, {}};
      hold(t, in, groups, quant);
      continue;
    }
    // Bits: walk back through channelwise nodes to a binary layer or a float tensor.
    std::vector<int> ops;
    int layer = -1;
    graph::TensorId cur = t;
    while (nb.producer[cur] >= 0 && !claimed[nb.producer[cur]]) {
      const int p = nb.producer[cur];
      if (IsChannelwise(g, g.nodes[p])) {
        ops.insert(ops.begin(), p);
        cur = g.nodes[p].inputs[0];
        if (!nb.Inner(cur)) break;
        continue;
      }
      if (input_of(g.nodes[p]) == LayerInput::kBits) layer = p;
      break;
    }
    if (layer < 0 && ops.empty()) continue;  // its consumers bitpack it themselves
    std::vector<const graph::Node*> op_nodes(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) op_nodes[i] = &g.nodes[ops[i]];
    const ChannelSteps steps(g, op_nodes, channels);
    std::vector<int> chain = ops;
    if (layer >= 0) {
      const graph::Node& l = g.nodes[layer];
      const kernels::Conv2dParams p = ConvParamsOf(l, shapes[l.inputs[0]], shapes[l.outputs[0]]);
      kernels::ConvOutput layout;
      layout.kind = kernels::OutputKind::kBits;
      layout.groups = groups;
      if (!kernels::OutputLayoutSupported(layout, p.out_c, p.groups)) continue;
      const int64_t per_channel =
          static_cast<int64_t>(p.kernel_h) * p.kernel_w * (p.in_c / p.groups);
      std::vector<float> scales(p.out_c);
      kernels::BinaryWeightScalesRef(p.out_c, per_channel, g.ConstantData<float>(l.inputs[1]),
                                     scales.data());
      kernels::OutputTransform layer_out;
      layer_out.mul = scales.data();
      layer_out.bias = l.inputs.size() > 2 ? g.ConstantData<float>(l.inputs[2]) : nullptr;
      NativePlan::Producer producer{t, {}, {}};
      auto f = [&](int c, int32_t d) {
        return steps.Apply(c, kernels::TransformOne(layer_out, c, d));
      };
      if (!IntegerThresholds(p.out_c, static_cast<int32_t>(per_channel), f, &producer.threshold,
                             &producer.flip)) {
        continue;
      }
      plan.producers[layer] = std::move(producer);
      chain.insert(chain.begin(), layer);
      claimed[layer] = true;
    } else {
      NativePlan::Packer packer{t, {}, {}};
      auto f = [&](int c, float x) { return steps.Apply(c, x); };
      if (!FloatThresholds(channels, f, &packer.below, &packer.above)) continue;
      plan.packers[ops[0]] = std::move(packer);
    }
    for (int n : ops) claimed[n] = true;
    if (chain.size() > 1) plan.fusion.chains.push_back(chain);
    hold(t, LayerInput::kBits, groups, {});
  }

  // 2. Layers whose float output goes through [batchnorm] [activation] apply them in their
  // transform.
  for (int s : scope.steps) {
    if (claimed[s] || input_of(g.nodes[s]) == LayerInput::kNone) continue;
    std::vector<int> chain = {s};
    bool bn = false, act = false;
    graph::TensorId cur = g.nodes[s].outputs[0];
    while (nb.Inner(cur)) {
      const int c = nb.consumers[cur][0];
      const graph::Node& n = g.nodes[c];
      if (!nb.in_steps[c] || claimed[c] || !IsChannelwise(g, n) || n.inputs[0] != cur) break;
      if (n.op == OpType::kBatchNorm && !bn && !act) {
        bn = true;
      } else if (IsActivation(n.op) && !act) {
        act = true;
      } else {
        break;
      }
      chain.push_back(c);
      cur = n.outputs[0];
    }
    if (chain.size() < 2) continue;
    for (int n : chain) claimed[n] = true;
    plan.fusion.chains.push_back(chain);
  }
  return plan;
}

kernels::OutputTransform FusedTransform(const graph::Graph& g,
                                        const std::vector<const graph::Node*>& fused, int channels,
                                        const float* mul, const float* bias,
                                        TransformStorage* storage) {
  kernels::OutputTransform o;
  o.mul = mul;
  o.bias = bias;
  for (const graph::Node* n : fused) {
    switch (n->op) {
      case OpType::kBatchNorm:
        FoldBatchNorm(g, *n, channels, &storage->bn_mul, &storage->bn_add);
        o.bn_mul = storage->bn_mul.data();
        o.bn_add = storage->bn_add.data();
        break;
      case OpType::kRelu:
        o.act = kernels::Activation::kRelu;
        break;
      case OpType::kHardtanh: {
        const auto& a = std::get<graph::HardtanhAttrs>(n->attrs);
        o.act = kernels::Activation::kHardtanh;
        o.act_min = a.min_val;
        o.act_max = a.max_val;
        break;
      }
      case OpType::kPrelu: {
        const float* v = g.ConstantData<float>(n->inputs[1]);
        const bool shared = graph::NumElements(g.tensors[n->inputs[1]].shape) == 1;
        storage->slope.resize(channels);
        for (int c = 0; c < channels; ++c) storage->slope[c] = v[shared ? 0 : c];
        o.act = kernels::Activation::kPrelu;
        o.slope = storage->slope.data();
        break;
      }
      default:
        break;
    }
  }
  return o;
}

}  // namespace hybrid::engine::native
