// The edge/cloud partition of a graph and the static cost model (MACs, parameters, bytes).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::graph {

// Activations a partition reads but does not write: for the cloud these are what the edge sends
// (feature maps at the split, or the raw input for a selective-query model).
std::vector<TensorId> PartitionInputs(const Graph& graph, Partition p);

// Whether a partition has any node.
bool HasPartition(const Graph& graph, Partition p);

inline constexpr int kNumPrecisions = 5;  // indexed by static_cast<int>(Precision)

struct NodeCost {
  int64_t macs = 0;                      // per sample
  Precision precision = Precision::kF32;  // of the multiplications: the wider operand
  int64_t params = 0;                    // constant elements
  int64_t param_bytes = 0;               // at the precision the weights are used (1 bit, 2 bits...)
  int64_t output_elements = 0;           // per sample
};

struct PartitionCost {
  int nodes = 0;
  std::array<int64_t, kNumPrecisions> macs{};  // per sample, by precision
  int64_t params = 0;
  int64_t param_bytes = 0;
  int64_t total_macs() const;
};

struct CostReport {
  std::vector<NodeCost> nodes;  // parallel to Graph::nodes
  PartitionCost edge, cloud;
  // f32 bytes per sample of the activations the cloud partition reads from the edge's side.
  int64_t boundary_bytes = 0;
};

// Static costs per node and per partition of a validated graph.
Result<CostReport> AnalyzeCost(const Graph& graph);

}  // namespace hybrid::graph
