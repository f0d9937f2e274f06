// Checks that a graph means something runnable and infers the shapes of its activations.
#pragma once

#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::graph {

// Bounds that keep a hostile model file from asking for absurd allocations.
struct Limits {
  static constexpr int kMaxRank = 6;
  static constexpr int64_t kMaxDim = int64_t{1} << 20;
  static constexpr int64_t kMaxElements = int64_t{1} << 28;  // per tensor at batch 1
  static constexpr int64_t kMaxBatch = int64_t{1} << 16;
  static constexpr size_t kMaxTensors = 1 << 20;
  static constexpr size_t kMaxNodes = 1 << 20;
};

// Checks names, tensor references, arity, attributes, constants' sizes, the one-way edge->cloud
// rule and shape consistency; sorts nodes topologically and fills activations' shapes (batch
// dimension -1). Reports the first problem with the node or tensor it concerns.
Status Validate(Graph& graph);

// Shapes of all tensors with the batch dimension set to `batch`; expects a validated graph.
Result<std::vector<Shape>> InferShapes(const Graph& graph, int64_t batch);

// Output size of a window op along one axis; <= 0 when the window does not fit.
int64_t WindowOutputSize(int64_t in, int kernel, int stride, int dilation, int pad_begin,
                         int pad_end);

}  // namespace hybrid::graph
