// Builds graphs in C++: for tests, the example model and the trainer's export.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::graph {

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name);

  // Nodes added from now on belong to this partition (edge by default).
  void SetPartition(Partition p) { partition_ = p; }

  // A graph input; `shape` excludes the batch dimension (e.g. {28, 28, 1}).
  TensorId Input(const std::string& name, const Shape& shape);
  // A constant holding a copy of `values`; expects NumElements(shape) values.
  TensorId Constant(const std::string& name, const Shape& shape, std::vector<float> values);

  // Each op adds one node and returns its output tensor, named after the node.
  TensorId Conv2d(const std::string& name, TensorId x, TensorId w, TensorId bias,
                  const Conv2dAttrs& attrs);  // bias may be -1
  TensorId Dense(const std::string& name, TensorId x, TensorId w, TensorId bias,
                 const DenseAttrs& attrs = {});
  TensorId BatchNorm(const std::string& name, TensorId x, TensorId gamma, TensorId beta,
                     TensorId mean, TensorId var, float epsilon = 1e-5f);
  TensorId Prelu(const std::string& name, TensorId x, TensorId slope);
  TensorId Hardtanh(const std::string& name, TensorId x, float min_val, float max_val);
  TensorId Pool(const std::string& name, OpType op, TensorId x, const Pool2dAttrs& attrs);
  TensorId Concat(const std::string& name, const std::vector<TensorId>& xs, int axis);
  // Ops without attributes: relu, sign, add, global_avgpool, flatten, softmax.
  TensorId Op(const std::string& name, OpType op, const std::vector<TensorId>& xs);

  void Output(const std::string& name, TensorId t, OutputKind kind);
  Graph& graph() { return graph_; }

  // Validates and returns the graph.
  Result<Graph> Build() &&;

 private:
  TensorId AddNode(const std::string& name, OpType op, std::vector<TensorId> inputs, Attrs attrs);
  Graph graph_;
  Partition partition_ = Partition::kEdge;
};

}  // namespace hybrid::graph
