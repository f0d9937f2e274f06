#include "graph/ir.h"

namespace hybrid::graph {

std::string_view ToString(DataType t) {
  switch (t) {
    case DataType::kF32:
      return "f32";
    case DataType::kI8:
      return "i8";
    case DataType::kU8:
      return "u8";
    case DataType::kI32:
      return "i32";
  }
  return "?";
}

std::string_view ToString(Precision p) {
  switch (p) {
    case Precision::kF32:
      return "f32";
    case Precision::kInt8:
      return "int8";
    case Precision::kInt4:
      return "int4";
    case Precision::kInt2:
      return "int2";
    case Precision::kBinary:
      return "binary";
  }
  return "?";
}

std::string_view ToString(Partition p) { return p == Partition::kEdge ? "edge" : "cloud"; }

std::string_view ToString(OutputKind k) {
  switch (k) {
    case OutputKind::kExit:
      return "exit";
    case OutputKind::kFinal:
      return "final";
    case OutputKind::kRouter:
      return "router";
    case OutputKind::kOther:
      return "other";
  }
  return "?";
}

std::string_view ToString(OpType op) {
  switch (op) {
    case OpType::kConv2d:
      return "conv2d";
    case OpType::kDense:
      return "dense";
    case OpType::kBatchNorm:
      return "batchnorm";
    case OpType::kRelu:
      return "relu";
    case OpType::kPrelu:
      return "prelu";
    case OpType::kHardtanh:
      return "hardtanh";
    case OpType::kSign:
      return "sign";
    case OpType::kAdd:
      return "add";
    case OpType::kMaxPool2d:
      return "maxpool2d";
    case OpType::kAvgPool2d:
      return "avgpool2d";
    case OpType::kGlobalAvgPool:
      return "global_avgpool";
    case OpType::kFlatten:
      return "flatten";
    case OpType::kSoftmax:
      return "softmax";
    case OpType::kConcat:
      return "concat";
  }
  return "?";
}

size_t SizeOf(DataType t) {
  switch (t) {
    case DataType::kF32:
    case DataType::kI32:
      return 4;
    case DataType::kI8:
    case DataType::kU8:
      return 1;
  }
  return 0;
}

int Bits(Precision p) {
  switch (p) {
    case Precision::kF32:
      return 32;
    case Precision::kInt8:
      return 8;
    case Precision::kInt4:
      return 4;
    case Precision::kInt2:
      return 2;
    case Precision::kBinary:
      return 1;
  }
  return 32;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += shape[i] == kBatchDim ? "N" : std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TensorId Graph::FindTensor(std::string_view tensor_name) const {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == tensor_name) return static_cast<TensorId>(i);
  }
  return -1;
}

int Graph::FindNode(std::string_view node_name) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].name == node_name) return static_cast<int>(i);
  }
  return -1;
}

const NamedOutput* Graph::FindOutput(std::string_view output_name) const {
  for (const NamedOutput& o : outputs) {
    if (o.name == output_name) return &o;
  }
  return nullptr;
}

}  // namespace hybrid::graph
