#include "graph/builder.h"

#include <memory>

#include "graph/validate.h"

namespace hybrid::graph {

GraphBuilder::GraphBuilder(std::string name) { graph_.name = std::move(name); }

TensorId GraphBuilder::Input(const std::string& name, const Shape& shape) {
  Tensor t;
  t.name = name;
  t.shape = {kBatchDim};
  t.shape.insert(t.shape.end(), shape.begin(), shape.end());
  graph_.tensors.push_back(std::move(t));
  TensorId id = static_cast<TensorId>(graph_.tensors.size() - 1);
  graph_.inputs.push_back(id);
  return id;
}

TensorId GraphBuilder::Constant(const std::string& name, const Shape& shape,
                                std::vector<float> values) {
  auto storage = std::make_shared<std::vector<float>>(std::move(values));
  Tensor t;
  t.name = name;
  t.shape = shape;
  t.data = storage->data();
  t.bytes = storage->size() * sizeof(float);
  graph_.storage.push_back(storage);
  graph_.tensors.push_back(std::move(t));
  return static_cast<TensorId>(graph_.tensors.size() - 1);
}

TensorId GraphBuilder::AddNode(const std::string& name, OpType op, std::vector<TensorId> inputs,
                               Attrs attrs) {
  Tensor out;
  out.name = name;
  graph_.tensors.push_back(std::move(out));
  Node node;
  node.name = name;
  node.op = op;
  node.inputs = std::move(inputs);
  node.outputs = {static_cast<TensorId>(graph_.tensors.size() - 1)};
  node.attrs = attrs;
  node.partition = partition_;
  graph_.nodes.push_back(std::move(node));
  return graph_.nodes.back().outputs[0];
}

TensorId GraphBuilder::Conv2d(const std::string& name, TensorId x, TensorId w, TensorId bias,
                              const Conv2dAttrs& attrs) {
  std::vector<TensorId> in = {x, w};
  if (bias >= 0) in.push_back(bias);
  return AddNode(name, OpType::kConv2d, std::move(in), attrs);
}

TensorId GraphBuilder::Dense(const std::string& name, TensorId x, TensorId w, TensorId bias,
                             const DenseAttrs& attrs) {
  std::vector<TensorId> in = {x, w};
  if (bias >= 0) in.push_back(bias);
  return AddNode(name, OpType::kDense, std::move(in), attrs);
}

TensorId GraphBuilder::BatchNorm(const std::string& name, TensorId x, TensorId gamma, TensorId beta,
                                 TensorId mean, TensorId var, float epsilon) {
  return AddNode(name, OpType::kBatchNorm, {x, gamma, beta, mean, var}, BatchNormAttrs{epsilon});
}

TensorId GraphBuilder::Prelu(const std::string& name, TensorId x, TensorId slope) {
  return AddNode(name, OpType::kPrelu, {x, slope}, {});
}

TensorId GraphBuilder::Hardtanh(const std::string& name, TensorId x, float min_val, float max_val) {
  return AddNode(name, OpType::kHardtanh, {x}, HardtanhAttrs{min_val, max_val});
}

TensorId GraphBuilder::Pool(const std::string& name, OpType op, TensorId x,
                            const Pool2dAttrs& attrs) {
  return AddNode(name, op, {x}, attrs);
}

TensorId GraphBuilder::Concat(const std::string& name, const std::vector<TensorId>& xs, int axis) {
  return AddNode(name, OpType::kConcat, xs, ConcatAttrs{axis});
}

TensorId GraphBuilder::Op(const std::string& name, OpType op, const std::vector<TensorId>& xs) {
  return AddNode(name, op, xs, {});
}

void GraphBuilder::Output(const std::string& name, TensorId t, OutputKind kind) {
  graph_.outputs.push_back({name, t, kind});
}

Result<Graph> GraphBuilder::Build() && {
  HYBRID_RETURN_IF_ERROR(Validate(graph_));
  return std::move(graph_);
}

}  // namespace hybrid::graph
