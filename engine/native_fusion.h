// Engine-internal: what the native backend fuses and the exact numbers fusion needs. A binary
// layer's output that only feeds (through batchnorm, sign, relu, prelu or hardtanh nodes) other
// binary layers is passed on bitpacked, by thresholds that reproduce the ref backend's float
// results bit for bit; a layer's output that only feeds integer (or 2-bit) layers sharing one
// quantization is passed on quantized; a layer followed by [batchnorm] [relu | hardtanh | prelu]
// applies them in its output transform, with the same roundings as the separate nodes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "engine/backend.h"
#include "graph/ir.h"
#include "kernels/output.h"
#include "kernels/params.h"

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

// A tensor native kernels pass among themselves in the form its consumers read: bitpacked for
// binary layers, quantized bytes for integer layers, two bit planes for 2-bit layers.
struct HeldTensor {
  graph::TensorId tensor = -1;
  kernels::OutputKind kind = kernels::OutputKind::kBits;  // kBits, kU8 or kPlanes2
  int64_t pixels = 0;  // batch * height * width, or batch for a dense layer's input
  int channels = 0, groups = 1;
  kernels::ActivationQuant quant;  // kU8, kPlanes2: the consumers' quantization
  std::vector<uint64_t> storage;   // zeroed once: bytes no channel owns stay zero
  void* data() { return storage.data(); }
  const void* data() const { return storage.data(); }
};

// How the native backend runs a scope.
struct NativePlan {
  FusionPlan fusion;
  // Layers that write a held tensor instead of floats (with the nodes fused after them).
  struct Producer {
    graph::TensorId held;
    std::vector<int32_t> threshold;  // kBits: on the layer's sums
    std::vector<uint8_t> flip;       // kBits: channels whose weights are negated
  };
  std::map<int, Producer> producers;  // by layer node
  // Float tensors bitpacked through thresholds: channelwise nodes, the first one's input packed.
  struct Packer {
    graph::TensorId held;
    std::vector<float> below, above;
  };
  std::map<int, Packer> packers;  // by the chain's first node
  std::map<graph::TensorId, HeldTensor> held;
};

// What a native layer reads: the form its input may be held in.
enum class LayerInput {
  kNone,     // not a layer the native kernels run
  kBits,     // binary activations
  kU8,       // integer activations (int8, int4 weights)
  kPlanes2,  // 2-bit activations with 2-bit weights
};

// Decides the native backend's fusions. `input_of(node)` says which native layer a node is.
NativePlan PlanNativeFusion(const PlanScope& scope,
                            const std::function<LayerInput(const graph::Node&)>& input_of);

// The float transform of a layer with scales `mul` and `bias` (may be null) followed by the
// `fused` nodes ([batchnorm] [activation]): batchnorm parameters and prelu slopes go to `storage`.
struct TransformStorage {
  std::vector<float> bn_mul, bn_add, slope;
  std::vector<int32_t> plane_threshold;  // kernels::Planes2Thresholds, for 2-bit planes out
};
kernels::OutputTransform FusedTransform(const graph::Graph& g,
                                        const std::vector<const graph::Node*>& fused, int channels,
                                        const float* mul, const float* bias,
                                        TransformStorage* storage);

}  // namespace hybrid::engine::native
