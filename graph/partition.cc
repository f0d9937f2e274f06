#include "graph/partition.h"

#include <algorithm>

#include "graph/validate.h"

namespace hybrid::graph {

std::vector<TensorId> PartitionInputs(const Graph& g, Partition p) {
  std::vector<bool> written(g.tensors.size(), false);
  for (const Node& n : g.nodes) {
    if (n.partition == p) written[n.outputs[0]] = true;
  }
  std::vector<TensorId> result;
  for (const Node& n : g.nodes) {
    if (n.partition != p) continue;
    for (TensorId t : n.inputs) {
      if (!g.tensors[t].is_constant() && !written[t] &&
          std::find(result.begin(), result.end(), t) == result.end()) {
        result.push_back(t);
      }
    }
  }
  return result;
}

bool HasPartition(const Graph& g, Partition p) {
  return std::any_of(g.nodes.begin(), g.nodes.end(),
                     [p](const Node& n) { return n.partition == p; });
}

int64_t PartitionCost::total_macs() const {
  int64_t t = 0;
  for (int64_t m : macs) t += m;
  return t;
}

namespace {

Precision Wider(const Quantization& q) {
  return Bits(q.weight_precision) >= Bits(q.activation_precision) ? q.weight_precision
                                                                  : q.activation_precision;
}

}  // namespace

Result<CostReport> AnalyzeCost(const Graph& g) {
  HYBRID_ASSIGN_OR_RETURN(std::vector<Shape> shapes, InferShapes(g, 1));
  CostReport report;
  for (const Node& n : g.nodes) {
    NodeCost c;
    const Shape& out = shapes[n.outputs[0]];
    c.output_elements = NumElements(out);
    Precision weight_precision = Precision::kF32;
    switch (n.op) {
      case OpType::kConv2d: {
        const auto& a = std::get<Conv2dAttrs>(n.attrs);
        const Shape& w = shapes[n.inputs[1]];
        c.macs = c.output_elements * w[1] * w[2] * w[3];
        c.precision = Wider(a.quant);
        weight_precision = a.quant.weight_precision;
        break;
      }
      case OpType::kDense: {
        const auto& a = std::get<DenseAttrs>(n.attrs);
        c.macs = c.output_elements * shapes[n.inputs[1]][1];
        c.precision = Wider(a.quant);
        weight_precision = a.quant.weight_precision;
        break;
      }
      default:
        break;
    }
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      const Tensor& t = g.tensors[n.inputs[i]];
      if (!t.is_constant()) continue;
      int64_t elements = NumElements(t.shape);
      c.params += elements;
      // Only the weights (input 1) of conv/dense are quantized; biases and BN stay f32.
      int bits = i == 1 ? Bits(weight_precision) : 32;
      c.param_bytes += (elements * bits + 7) / 8;
    }
    PartitionCost& p = n.partition == Partition::kEdge ? report.edge : report.cloud;
    p.nodes++;
    p.macs[static_cast<int>(c.precision)] += c.macs;
    p.params += c.params;
    p.param_bytes += c.param_bytes;
    report.nodes.push_back(c);
  }
  for (TensorId t : PartitionInputs(g, Partition::kCloud)) {
    report.boundary_bytes += NumElements(shapes[t]) * static_cast<int64_t>(sizeof(float));
  }
  return report;
}

}  // namespace hybrid::graph
