// Engine-internal: what the native backend fuses and the exact numbers fusion needs. A binary
// layer's output that only feeds (through batchnorm, sign, relu, prelu or hardtanh nodes) other
// binary layers is passed on bitpacked, by thresholds that reproduce the ref backend's float
// results bit for bit; a layer followed by [batchnorm] [relu | hardtanh | prelu] applies them in
// its output transform, with the same roundings as the separate nodes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "engine/backend.h"
#include "graph/ir.h"
#include "kernels/output.h"

namespace hybrid::engine::native {

// True for the nodes fusion may absorb: elementwise, per channel, parameters constant.
bool IsChannelwise(const graph::Graph& g, const graph::Node& node);

// Channelwise nodes as scalar functions of one channel's value, computed by the ref kernels on
// one element so that they round exactly as the ref backend's nodes do.
class ChannelSteps {
 public:
  ChannelSteps(const graph::Graph& g, const std::vector<const graph::Node*>& nodes, int channels);
  float Apply(int c, float x) const;

 private:
  struct Step {
    graph::OpType op;
    std::vector<float> a, b;  // batchnorm scale and shift; prelu slopes in a
    float lo = 0.f, hi = 0.f;
  };
  std::vector<Step> steps_;
};

// Per-channel thresholds on an integer sum d in [-k, k] such that f(c, d) < 0 exactly when
// d < threshold[c] for the channels not flipped, and -d < threshold[c] for those flipped.
// False when some channel's answers change more than once over the range.
bool IntegerThresholds(int channels, int32_t k, const std::function<float(int, int32_t)>& f,
                       std::vector<int32_t>* threshold, std::vector<uint8_t>* flip);

// Per-channel bounds such that f(c, x) < 0 exactly when x < below[c] or x > above[c], for every
// float x (NaN gives false on both sides). Found by bisection over the ordered floats, which is
// exact when f is monotone (the channelwise nodes are, but for a prelu with a negative slope);
// checked on both sides of each bound and at the extremes. False when the check fails.
bool FloatThresholds(int channels, const std::function<float(int, float)>& f,
                     std::vector<float>* below, std::vector<float>* above);

// The nodes after a layer that its float transform can absorb: [batchnorm] then at most one of
// relu, hardtanh, prelu, each reading the one before alone.
struct TransformChain {
  std::vector<int> nodes;
};

// A tensor passed bitpacked between native kernels, in the layout of its binary consumers.
struct PackedTensor {
  graph::TensorId tensor = -1;
  int64_t pixels = 0;  // batch * height * width, or batch for a dense layer's input
  int channels = 0, groups = 1;
  std::vector<uint64_t> words;  // pixels * groups * PackedWords(channels / groups), zeroed once
};

// How the native backend runs a scope.
struct NativePlan {
  FusionPlan fusion;
  // Producers of packed tensors: a binary layer whose sums go straight to bits.
  struct BitsProducer {
    graph::TensorId packed;  // the tensor it writes, bitpacked
    std::vector<int32_t> threshold;
    std::vector<uint8_t> flip;  // channels whose weights are negated
  };
  std::map<int, BitsProducer> bits_producers;  // by layer node
  // Float tensors bitpacked through thresholds: channelwise nodes, the first one's input packed.
  struct Packer {
    graph::TensorId packed;
    std::vector<float> below, above;
  };
  std::map<int, Packer> packers;  // by the chain's first node
  std::map<graph::TensorId, PackedTensor> packed;
};

// Decides the native backend's fusions. `binary_layer(node)` says whether a node is a binary
// conv2d or dense the native kernels will run; `owned_layer(node)` whether the node is any layer
// they run (binary, integer, 2-bit), whose float transform may absorb what follows it.
NativePlan PlanNativeFusion(const PlanScope& scope,
                            const std::function<bool(const graph::Node&)>& binary_layer,
                            const std::function<bool(const graph::Node&)>& owned_layer);

// The float transform of a layer with scales `mul` and `bias` (may be null) followed by the
// `fused` nodes (a TransformChain): batchnorm parameters and prelu slopes go to `storage`.
struct TransformStorage {
  std::vector<float> bn_mul, bn_add, slope;
};
kernels::OutputTransform FusedTransform(const graph::Graph& g,
                                        const std::vector<const graph::Node*>& fused, int channels,
                                        const float* mul, const float* bias,
                                        TransformStorage* storage);

}  // namespace hybrid::engine::native
