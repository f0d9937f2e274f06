// The in-memory graph: named tensors (activations and constants) and the ops between them.
// Activations are NHWC (channels last); conv weights are [out_c][kh][kw][in_c/groups].
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hybrid::graph {

using Shape = std::vector<int64_t>;
using TensorId = int;
inline constexpr int64_t kBatchDim = -1;  // first dimension of an activation declared in a model

enum class DataType { kF32, kI8, kU8, kI32 };
enum class Precision { kF32, kInt8, kInt4, kInt2, kBinary };
enum class Partition { kEdge, kCloud };
enum class OutputKind { kExit, kFinal, kRouter, kOther };
enum class OpType {
  kConv2d, kDense, kBatchNorm, kRelu, kPrelu, kHardtanh, kSign, kAdd,
  kMaxPool2d, kAvgPool2d, kGlobalAvgPool, kFlatten, kSoftmax, kConcat,
};

std::string_view ToString(DataType t);
std::string_view ToString(Precision p);
std::string_view ToString(Partition p);
std::string_view ToString(OutputKind k);
std::string_view ToString(OpType op);
size_t SizeOf(DataType t);
int Bits(Precision p);  // 32, 8, 4, 2 or 1
std::string ShapeToString(const Shape& shape);
// Number of elements; expects every dimension non-negative.
int64_t NumElements(const Shape& shape);

struct Quantization {
  Precision weight_precision = Precision::kF32;
  Precision activation_precision = Precision::kF32;
  float act_scale = 1.f;
  int act_zero_point = 0;
  bool act_signed = false;
  bool IsFloat() const {
    return weight_precision == Precision::kF32 && activation_precision == Precision::kF32;
  }
};

struct Conv2dAttrs {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
  float pad_value = 0.f;
  Quantization quant;
};
struct DenseAttrs {
  Quantization quant;
};
struct BatchNormAttrs {
  float epsilon = 1e-5f;
};
struct HardtanhAttrs {
  float min_val = -1.f, max_val = 1.f;
};
struct Pool2dAttrs {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool count_include_pad = false;
};
struct ConcatAttrs {
  int axis = -1;
};
using Attrs = std::variant<std::monostate, Conv2dAttrs, DenseAttrs, BatchNormAttrs, HardtanhAttrs,
                           Pool2dAttrs, ConcatAttrs>;

struct Tensor {
  std::string name;
  Shape shape;
  DataType dtype = DataType::kF32;
  // Constants point at their bytes (in a memory-mapped file or in Graph-owned storage).
  const void* data = nullptr;
  size_t bytes = 0;
  bool is_constant() const { return data != nullptr; }
};

struct Node {
  std::string name;
  OpType op = OpType::kRelu;
  std::vector<TensorId> inputs;
  std::vector<TensorId> outputs;
  Attrs attrs;
  Partition partition = Partition::kEdge;
};

struct NamedOutput {
  std::string name;
  TensorId tensor = -1;
  OutputKind kind = OutputKind::kOther;
};

struct Graph {
  std::string name;
  std::vector<Tensor> tensors;
  std::vector<Node> nodes;  // topologically ordered once validated
  std::vector<TensorId> inputs;
  std::vector<NamedOutput> outputs;
  std::string dataset;
  std::vector<float> input_mean, input_std;
  std::vector<std::string> class_names;
  std::map<std::string, std::string> metadata;
  // Keeps constant storage alive: a file mapping or buffers owned by a builder.
  std::vector<std::shared_ptr<const void>> storage;

  // Index of the tensor or node with this name, or -1.
  TensorId FindTensor(std::string_view name) const;
  int FindNode(std::string_view name) const;
  const NamedOutput* FindOutput(std::string_view name) const;
  template <typename T>
  const T* ConstantData(TensorId id) const {
    return static_cast<const T*>(tensors[id].data);
  }
};

}  // namespace hybrid::graph
