#include "graph/validate.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <set>

namespace hybrid::graph {
namespace {

Status CheckShapeBounds(const Shape& shape, bool activation, const std::string& what) {
  if (shape.size() > static_cast<size_t>(Limits::kMaxRank)) {
    return Error("{} has rank {} (at most {} supported)", what, shape.size(), Limits::kMaxRank);
  }
  int64_t elements = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t d = shape[i];
    if (activation && i == 0 && d == kBatchDim) continue;
    if (d < 1 || d > Limits::kMaxDim) {
      return Error("{} has dimension {} = {} (must be 1..{})", what, i, d, Limits::kMaxDim);
    }
    elements *= d;  // cannot overflow: checked against the bound at every step
    if (elements > Limits::kMaxElements) {
      return Error("{} has {} or more elements (at most {} supported)", what, elements,
                   Limits::kMaxElements);
    }
  }
  return Status::Ok();
}

struct Arity {
  size_t min_inputs, max_inputs;
};

Arity ArityOf(OpType op) {
  switch (op) {
    case OpType::kConv2d:
    case OpType::kDense:
      return {2, 3};
    case OpType::kBatchNorm:
      return {5, 5};
    case OpType::kPrelu:
    case OpType::kAdd:
      return {2, 2};
    case OpType::kConcat:
      return {1, 64};
    default:
      return {1, 1};
  }
}

// Number of leading inputs that are activations; the rest must be constants.
size_t ActivationInputs(const Node& node) {
  switch (node.op) {
    case OpType::kConv2d:
    case OpType::kDense:
    case OpType::kBatchNorm:
    case OpType::kPrelu:
      return 1;
    default:
      return node.inputs.size();
  }
}

bool AttrsMatch(const Node& node) {
  switch (node.op) {
    case OpType::kConv2d:
      return std::holds_alternative<Conv2dAttrs>(node.attrs);
    case OpType::kDense:
      return std::holds_alternative<DenseAttrs>(node.attrs);
    case OpType::kBatchNorm:
      return std::holds_alternative<BatchNormAttrs>(node.attrs);
    case OpType::kHardtanh:
      return std::holds_alternative<HardtanhAttrs>(node.attrs);
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d:
      return std::holds_alternative<Pool2dAttrs>(node.attrs);
    case OpType::kConcat:
      return std::holds_alternative<ConcatAttrs>(node.attrs);
    default:
      return std::holds_alternative<std::monostate>(node.attrs);
  }
}

Status CheckQuantization(const Quantization& q) {
  if (!(q.act_scale > 0.f) || !std::isfinite(q.act_scale)) {
    return Error("activation scale {} must be positive and finite", q.act_scale);
  }
  if (q.act_zero_point < -128 || q.act_zero_point > 255) {
    return Error("activation zero point {} is out of range", q.act_zero_point);
  }
  return Status::Ok();
}

Status CheckWindow(int kernel_h, int kernel_w, int stride_h, int stride_w, int dilation_h,
                   int dilation_w, int pt, int pb, int pl, int pr) {
  constexpr int kMax = 1 << 12;
  auto bad = [](int v, int lo) { return v < lo || v > kMax; };
  if (bad(kernel_h, 1) || bad(kernel_w, 1))
    return Error("kernel {}x{} out of range", kernel_h, kernel_w);
  if (bad(stride_h, 1) || bad(stride_w, 1))
    return Error("stride {}x{} out of range", stride_h, stride_w);
  if (bad(dilation_h, 1) || bad(dilation_w, 1)) {
    return Error("dilation {}x{} out of range", dilation_h, dilation_w);
  }
  if (bad(pt, 0) || bad(pb, 0) || bad(pl, 0) || bad(pr, 0)) {
    return Error("padding {},{},{},{} out of range", pt, pb, pl, pr);
  }
  return Status::Ok();
}

// Shape of each output of `node` from its input shapes; the node's inputs are already known.
Result<Shape> InferNode(const Graph& g, const Node& node, const std::vector<Shape>& shapes) {
  auto in = [&](size_t i) -> const Shape& { return shapes[node.inputs[i]]; };
  const Shape& x = in(0);
  switch (node.op) {
    case OpType::kConv2d: {
      const auto& a = std::get<Conv2dAttrs>(node.attrs);
      HYBRID_RETURN_IF_ERROR(CheckWindow(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w,
                                         a.dilation_h, a.dilation_w, a.pad_top, a.pad_bottom,
                                         a.pad_left, a.pad_right));
      HYBRID_RETURN_IF_ERROR(CheckQuantization(a.quant));
      const Shape& w = in(1);
      if (x.size() != 4) return Error("input must be NHWC (rank 4), got {}", ShapeToString(x));
      if (w.size() != 4) return Error("weights must be [O,KH,KW,I], got {}", ShapeToString(w));
      if (a.groups < 1 || x[3] % a.groups != 0 || w[0] % a.groups != 0) {
        return Error("groups {} must divide input channels {} and output channels {}", a.groups,
                     x[3], w[0]);
      }
      if (w[1] != a.kernel_h || w[2] != a.kernel_w || w[3] != x[3] / a.groups) {
        return Error("weights {} do not match kernel {}x{} over {} input channels per group",
                     ShapeToString(w), a.kernel_h, a.kernel_w, x[3] / a.groups);
      }
      if (node.inputs.size() == 3 && in(2) != Shape{w[0]}) {
        return Error("bias {} must be [{}]", ShapeToString(in(2)), w[0]);
      }
      int64_t oh =
          WindowOutputSize(x[1], a.kernel_h, a.stride_h, a.dilation_h, a.pad_top, a.pad_bottom);
      int64_t ow =
          WindowOutputSize(x[2], a.kernel_w, a.stride_w, a.dilation_w, a.pad_left, a.pad_right);
      if (oh < 1 || ow < 1) {
        return Error("kernel does not fit the padded input {}", ShapeToString(x));
      }
      return Shape{x[0], oh, ow, w[0]};
    }
    case OpType::kDense: {
      HYBRID_RETURN_IF_ERROR(CheckQuantization(std::get<DenseAttrs>(node.attrs).quant));
      const Shape& w = in(1);
      if (x.size() != 2) return Error("input must be [N,F], got {}", ShapeToString(x));
      if (w.size() != 2 || w[1] != x[1]) {
        return Error("weights {} must be [O,{}]", ShapeToString(w), x[1]);
      }
      if (node.inputs.size() == 3 && in(2) != Shape{w[0]}) {
        return Error("bias {} must be [{}]", ShapeToString(in(2)), w[0]);
      }
      return Shape{x[0], w[0]};
    }
    case OpType::kBatchNorm: {
      const auto& a = std::get<BatchNormAttrs>(node.attrs);
      if (!(a.epsilon >= 0.f) || !std::isfinite(a.epsilon))
        return Error("bad epsilon {}", a.epsilon);
      if (x.size() < 2) return Error("input must have a channel axis, got {}", ShapeToString(x));
      for (size_t i = 1; i < 5; ++i) {
        if (in(i) != Shape{x.back()}) {
          return Error("parameter '{}' is {}, expected [{}]", g.tensors[node.inputs[i]].name,
                       ShapeToString(in(i)), x.back());
        }
      }
      return x;
    }
    case OpType::kPrelu:
      if (in(1) != Shape{x.back()} && in(1) != Shape{1}) {
        return Error("slope {} must be [{}] or [1]", ShapeToString(in(1)), x.back());
      }
      return x;
    case OpType::kHardtanh: {
      const auto& a = std::get<HardtanhAttrs>(node.attrs);
      if (!(a.min_val < a.max_val))
        return Error("min {} must be below max {}", a.min_val, a.max_val);
      return x;
    }
    case OpType::kRelu:
    case OpType::kSign:
      return x;
    case OpType::kAdd:
      if (in(1) != x) {
        return Error("operands differ in shape: {} and {}", ShapeToString(x), ShapeToString(in(1)));
      }
      return x;
    case OpType::kMaxPool2d:
    case OpType::kAvgPool2d: {
      const auto& a = std::get<Pool2dAttrs>(node.attrs);
      HYBRID_RETURN_IF_ERROR(CheckWindow(a.kernel_h, a.kernel_w, a.stride_h, a.stride_w, 1, 1,
                                         a.pad_top, a.pad_bottom, a.pad_left, a.pad_right));
      if (x.size() != 4) return Error("input must be NHWC (rank 4), got {}", ShapeToString(x));
      // A window made only of padding has no defined maximum or average.
      if (std::max(a.pad_top, a.pad_bottom) >= a.kernel_h ||
          std::max(a.pad_left, a.pad_right) >= a.kernel_w) {
        return Error("padding must be smaller than the kernel");
      }
      int64_t oh = WindowOutputSize(x[1], a.kernel_h, a.stride_h, 1, a.pad_top, a.pad_bottom);
      int64_t ow = WindowOutputSize(x[2], a.kernel_w, a.stride_w, 1, a.pad_left, a.pad_right);
      if (oh < 1 || ow < 1) return Error("window does not fit the input {}", ShapeToString(x));
      return Shape{x[0], oh, ow, x[3]};
    }
    case OpType::kGlobalAvgPool:
      if (x.size() != 4) return Error("input must be NHWC (rank 4), got {}", ShapeToString(x));
      return Shape{x[0], x[3]};
    case OpType::kFlatten: {
      if (x.size() < 2) return Error("input must have rank 2 or more, got {}", ShapeToString(x));
      int64_t f = 1;
      for (size_t i = 1; i < x.size(); ++i) f *= x[i];
      return Shape{x[0], f};
    }
    case OpType::kSoftmax:
      return x;
    case OpType::kConcat: {
      int rank = static_cast<int>(x.size());
      int axis = std::get<ConcatAttrs>(node.attrs).axis;
      if (axis < 0) axis += rank;
      if (axis < 1 || axis >= rank) {
        return Error("axis {} is invalid for rank {} (the batch axis cannot be concatenated)",
                     std::get<ConcatAttrs>(node.attrs).axis, rank);
      }
      Shape out = x;
      for (size_t i = 1; i < node.inputs.size(); ++i) {
        const Shape& s = in(i);
        bool ok = s.size() == x.size();
        for (int d = 0; ok && d < rank; ++d) ok = d == axis || s[d] == x[d];
        if (!ok) {
          return Error("input {} has shape {}, incompatible with {} along axis {}", i,
                       ShapeToString(s), ShapeToString(x), axis);
        }
        out[axis] += s[axis];
      }
      return out;
    }
  }
  return Error("unknown op");
}

// Kahn's algorithm; returns the node order or the name of a node on a cycle.
Result<std::vector<int>> TopologicalOrder(const Graph& g, const std::vector<int>& producer) {
  size_t n = g.nodes.size();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> consumers(n);
  for (size_t i = 0; i < n; ++i) {
    std::set<int> deps;
    for (TensorId t : g.nodes[i].inputs) {
      if (producer[t] >= 0) deps.insert(producer[t]);
    }
    pending[i] = static_cast<int>(deps.size());
    for (int d : deps) consumers[d].push_back(static_cast<int>(i));
  }
  // Ties keep file order so that a valid file's order is preserved.
  std::priority_queue<int, std::vector<int>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(static_cast<int>(i));
  }
  std::vector<int> order;
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int c : consumers[i]) {
      if (--pending[c] == 0) ready.push(c);
    }
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i) {
      if (pending[i] > 0) return Error("node '{}' is part of a cycle", g.nodes[i].name);
    }
  }
  return order;
}

}  // namespace

int64_t WindowOutputSize(int64_t in, int kernel, int stride, int dilation, int pad_begin,
                         int pad_end) {
  int64_t span = int64_t{dilation} * (kernel - 1) + 1;
  int64_t padded = in + pad_begin + pad_end;
  if (padded < span) return 0;
  return (padded - span) / stride + 1;
}

Status Validate(Graph& g) {
  if (g.tensors.size() > Limits::kMaxTensors || g.nodes.size() > Limits::kMaxNodes) {
    return Error("graph has {} tensors and {} nodes, more than supported", g.tensors.size(),
                 g.nodes.size());
  }
  const int num_tensors = static_cast<int>(g.tensors.size());
  std::set<std::string_view> names;
  for (const Tensor& t : g.tensors) {
    if (t.name.empty()) return Error("a tensor has an empty name");
    if (!names.insert(t.name).second) return Error("tensor name '{}' is used twice", t.name);
    bool activation = !t.is_constant();
    HYBRID_RETURN_IF_ERROR(CheckShapeBounds(t.shape, activation, "tensor '" + t.name + "'"));
    if (t.is_constant()) {
      if (t.dtype != DataType::kF32) {
        return Error("constant '{}' has type {}; only f32 constants are supported", t.name,
                     ToString(t.dtype));
      }
      size_t expected = static_cast<size_t>(NumElements(t.shape)) * SizeOf(t.dtype);
      if (t.bytes != expected) {
        return Error("constant '{}' {} holds {} bytes, expected {}", t.name, ShapeToString(t.shape),
                     t.bytes, expected);
      }
    } else if (t.dtype != DataType::kF32) {
      return Error("activation '{}' has type {}; activations are f32", t.name, ToString(t.dtype));
    }
  }
  std::vector<int> producer(num_tensors, -1);
  std::vector<bool> is_input(num_tensors, false);
  for (TensorId id : g.inputs) {
    if (id < 0 || id >= num_tensors) return Error("graph input {} is not a tensor", id);
    const Tensor& t = g.tensors[id];
    if (t.is_constant()) return Error("graph input '{}' is a constant", t.name);
    if (t.shape.empty() || t.shape[0] != kBatchDim) {
      return Error("graph input '{}' has shape {}: its first dimension must be the batch (-1)",
                   t.name, ShapeToString(t.shape));
    }
    if (is_input[id]) return Error("graph input '{}' is listed twice", t.name);
    is_input[id] = true;
  }
  std::set<std::string_view> node_names;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& node = g.nodes[i];
    if (node.name.empty()) return Error("node {} has an empty name", i);
    if (!node_names.insert(node.name).second) {
      return Error("node name '{}' is used twice", node.name);
    }
    auto fail = [&](const Status& s) {
      return s.WithContext(fmt::format("node '{}' ({})", node.name, ToString(node.op)));
    };
    Arity arity = ArityOf(node.op);
    if (node.inputs.size() < arity.min_inputs || node.inputs.size() > arity.max_inputs) {
      return fail(Error("has {} inputs, expected {} to {}", node.inputs.size(), arity.min_inputs,
                        arity.max_inputs));
    }
    if (node.outputs.size() != 1) {
      return fail(Error("has {} outputs, expected 1", node.outputs.size()));
    }
    if (!AttrsMatch(node)) return fail(Error("has attributes of another op"));
    size_t activations = ActivationInputs(node);
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      TensorId t = node.inputs[k];
      if (t < 0 || t >= num_tensors) return fail(Error("input {} refers to no tensor ({})", k, t));
      bool constant = g.tensors[t].is_constant();
      if (k < activations && constant) {
        return fail(Error("input '{}' must be an activation, not a constant", g.tensors[t].name));
      }
      if (k >= activations && !constant) {
        return fail(Error("input '{}' must be a constant (weights)", g.tensors[t].name));
      }
    }
    TensorId out = node.outputs[0];
    if (out < 0 || out >= num_tensors) return fail(Error("output refers to no tensor ({})", out));
    if (g.tensors[out].is_constant() || is_input[out]) {
      return fail(Error("writes '{}', which is a constant or a graph input", g.tensors[out].name));
    }
    if (producer[out] >= 0) {
      return fail(Error("writes '{}', which node '{}' writes too", g.tensors[out].name,
                        g.nodes[producer[out]].name));
    }
    producer[out] = static_cast<int>(i);
  }
  for (const Node& node : g.nodes) {
    for (TensorId t : node.inputs) {
      if (!g.tensors[t].is_constant() && !is_input[t] && producer[t] < 0) {
        return Error("node '{}' reads '{}', which no node writes and is no graph input", node.name,
                     g.tensors[t].name);
      }
      if (node.partition == Partition::kEdge && producer[t] >= 0 &&
          g.nodes[producer[t]].partition == Partition::kCloud) {
        return Error(
            "edge node '{}' reads '{}' from cloud node '{}': data flows edge to cloud only",
            node.name, g.tensors[t].name, g.nodes[producer[t]].name);
      }
    }
  }
  std::set<std::string_view> output_names;
  for (const NamedOutput& o : g.outputs) {
    if (o.name.empty()) return Error("an output has an empty name");
    if (!output_names.insert(o.name).second) return Error("output name '{}' is used twice", o.name);
    if (o.tensor < 0 || o.tensor >= num_tensors) {
      return Error("output '{}' refers to no tensor ({})", o.name, o.tensor);
    }
    if (producer[o.tensor] < 0) {
      return Error("output '{}' names '{}', which no node writes", o.name,
                   g.tensors[o.tensor].name);
    }
  }
  if (g.outputs.empty()) return Error("graph has no outputs");
  if (!g.input_mean.empty() || !g.input_std.empty()) {
    if (g.input_mean.size() != g.input_std.size()) {
      return Error("input_mean has {} entries but input_std has {}", g.input_mean.size(),
                   g.input_std.size());
    }
    for (float s : g.input_std) {
      if (!(s > 0.f) || !std::isfinite(s)) return Error("input_std entry {} must be positive", s);
    }
  }

  HYBRID_ASSIGN_OR_RETURN(std::vector<int> order, TopologicalOrder(g, producer));
  std::vector<Node> sorted;
  sorted.reserve(order.size());
  for (int i : order) sorted.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(sorted);

  // Shapes at batch 1 must be consistent and within bounds; declared shapes must agree.
  HYBRID_ASSIGN_OR_RETURN(std::vector<Shape> shapes, InferShapes(g, 1));
  for (const Node& node : g.nodes) {
    Tensor& t = g.tensors[node.outputs[0]];
    Shape declared = shapes[node.outputs[0]];
    declared[0] = kBatchDim;
    if (!t.shape.empty() && t.shape != declared) {
      return Error("node '{}' produces '{}' of shape {}, but the model declares {}", node.name,
                   t.name, ShapeToString(declared), ShapeToString(t.shape));
    }
    t.shape = declared;
  }
  return Status::Ok();
}

Result<std::vector<Shape>> InferShapes(const Graph& g, int64_t batch) {
  if (batch < 1 || batch > Limits::kMaxBatch) {
    return Error("batch size {} is out of range (1..{})", batch, Limits::kMaxBatch);
  }
  std::vector<Shape> shapes(g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    if (g.tensors[i].is_constant()) shapes[i] = g.tensors[i].shape;
  }
  for (TensorId id : g.inputs) {
    shapes[id] = g.tensors[id].shape;
    shapes[id][0] = batch;
  }
  for (const Node& node : g.nodes) {
    for (TensorId t : node.inputs) {
      if (shapes[t].empty()) {
        return Error("node '{}' reads '{}' before it is written", node.name, g.tensors[t].name);
      }
    }
    Result<Shape> out = InferNode(g, node, shapes);
    if (!out.ok()) {
      return out.status().WithContext(fmt::format("node '{}' ({})", node.name, ToString(node.op)));
    }
    Shape one = *out;
    one[0] = 1;
    HYBRID_RETURN_IF_ERROR(
        CheckShapeBounds(one, false, fmt::format("output of node '{}'", node.name)));
    shapes[node.outputs[0]] = std::move(*out);
  }
  return shapes;
}

}  // namespace hybrid::graph
