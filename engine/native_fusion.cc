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

// The packing layout binary layers read their input in: channels and groups.
int InputGroups(const graph::Node& layer) {
  return layer.op == OpType::kConv2d ? std::get<graph::Conv2dAttrs>(layer.attrs).groups : 1;
}

}  // namespace

NativePlan PlanNativeFusion(const PlanScope& scope,
                            const std::function<bool(const graph::Node&)>& binary_layer,
                            const std::function<bool(const graph::Node&)>& owned_layer) {
  const graph::Graph& g = *scope.graph;
  const std::vector<graph::Shape>& shapes = *scope.shapes;
  const int num_nodes = static_cast<int>(g.nodes.size());
  const int num_tensors = static_cast<int>(g.tensors.size());
  std::vector<bool> in_steps(num_nodes, false), claimed(num_nodes, false);
  for (int s : scope.steps) in_steps[s] = true;
  std::vector<std::vector<int>> consumers(num_tensors);
  for (int n = 0; n < num_nodes; ++n) {
    for (graph::TensorId t : g.nodes[n].inputs) consumers[t].push_back(n);
  }
  std::vector<int> producer(num_tensors, -1);
  for (int s : scope.steps) producer[g.nodes[s].outputs[0]] = s;
  // A tensor a chain may pass through: written in the plan, read by one node, kept by nobody.
  auto inner = [&](graph::TensorId t) {
    return producer[t] >= 0 && consumers[t].size() == 1 && !scope.readable[t];
  };

  NativePlan plan;
  // 1. Tensors read only by binary layers travel bitpacked, from the binary layer that computes
  // them through thresholds on its sums, or from a float tensor through bitpacking thresholds.
  for (int s : scope.steps) {
    const graph::TensorId t = g.nodes[s].outputs[0];
    if (scope.readable[t] || consumers[t].empty()) continue;
    int groups = -1;
    bool all_binary = true;
    for (int c : consumers[t]) {
      const graph::Node& layer = g.nodes[c];
      all_binary = all_binary && in_steps[c] && binary_layer(layer) && layer.inputs[0] == t &&
                   (groups < 0 || groups == InputGroups(layer));
      for (size_t i = 1; i < layer.inputs.size(); ++i) all_binary &= layer.inputs[i] != t;
      groups = InputGroups(layer);
    }
    if (!all_binary) continue;
    // Walk back through channelwise nodes to a binary layer or a float tensor.
    std::vector<int> ops;
    int layer = -1;
    graph::TensorId cur = t;
    while (producer[cur] >= 0 && !claimed[producer[cur]]) {
      const int p = producer[cur];
      if (IsChannelwise(g, g.nodes[p])) {
        ops.insert(ops.begin(), p);
        cur = g.nodes[p].inputs[0];
        if (!inner(cur)) break;
        continue;
      }
      if (binary_layer(g.nodes[p])) layer = p;
      break;
    }
    if (layer < 0 && ops.empty()) continue;  // its consumers bitpack it themselves
    const int channels = static_cast<int>(shapes[t].back());
    std::vector<const graph::Node*> op_nodes(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) op_nodes[i] = &g.nodes[ops[i]];
    const ChannelSteps steps(g, op_nodes, channels);
    std::vector<int> chain = ops;
    if (layer >= 0) {
      const graph::Node& l = g.nodes[layer];
      const kernels::Conv2dParams p = ConvParamsOf(l, shapes[l.inputs[0]], shapes[l.outputs[0]]);
      if (!kernels::BinaryBitsLayoutSupported(p, groups)) continue;
      const int64_t per_channel =
          static_cast<int64_t>(p.kernel_h) * p.kernel_w * (p.in_c / p.groups);
      std::vector<float> scales(p.out_c);
      kernels::BinaryWeightScalesRef(p.out_c, per_channel, g.ConstantData<float>(l.inputs[1]),
                                     scales.data());
      kernels::OutputTransform layer_out;
      layer_out.mul = scales.data();
      layer_out.bias = l.inputs.size() > 2 ? g.ConstantData<float>(l.inputs[2]) : nullptr;
      NativePlan::BitsProducer bp{t, {}, {}};
      auto f = [&](int c, int32_t d) {
        return steps.Apply(c, kernels::TransformOne(layer_out, c, d));
      };
      if (!IntegerThresholds(p.out_c, static_cast<int32_t>(per_channel), f, &bp.threshold,
                             &bp.flip)) {
        continue;
      }
      plan.bits_producers[layer] = std::move(bp);
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
    plan.fusion.internal.push_back(t);
    PackedTensor& packed = plan.packed[t];
    packed.tensor = t;
    packed.channels = channels;
    packed.groups = groups;
    packed.pixels = graph::NumElements(shapes[t]) / channels;
    packed.words.assign(
        static_cast<size_t>(packed.pixels) * groups * kernels::PackedWords(channels / groups), 0);
  }

  // 2. Layers whose float output goes through [batchnorm] [activation] apply them in their
  // transform.
  for (int s : scope.steps) {
    if (claimed[s] || !owned_layer(g.nodes[s])) continue;
    std::vector<int> chain = {s};
    bool bn = false, act = false;
    graph::TensorId cur = g.nodes[s].outputs[0];
    while (inner(cur)) {
      const int c = consumers[cur][0];
      const graph::Node& n = g.nodes[c];
      if (!in_steps[c] || claimed[c] || !IsChannelwise(g, n) || n.inputs[0] != cur) break;
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
