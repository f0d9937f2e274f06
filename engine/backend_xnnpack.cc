// The XNNPACK backend: each node becomes one or a few XNNPACK operators, created (weights packed)
// and set up (buffers bound) at plan time, so that Run only calls xnn_run_operator.
#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/layer_params.h"

namespace hybrid::engine {
namespace {

using graph::OpType;

constexpr float kInf = std::numeric_limits<float>::infinity();

const char* StatusName(xnn_status s) {
  switch (s) {
    case xnn_status_success:
      return "success";
    case xnn_status_uninitialized:
      return "uninitialized";
    case xnn_status_invalid_parameter:
      return "invalid parameter";
    case xnn_status_invalid_state:
      return "invalid state";
    case xnn_status_unsupported_parameter:
      return "unsupported parameter";
    case xnn_status_unsupported_hardware:
      return "unsupported hardware";
    case xnn_status_out_of_memory:
      return "out of memory";
  }
  return "unknown status";
}

Status Check(xnn_status s, const char* what) {
  if (s == xnn_status_success) return Status::Ok();
  return Error("XNNPACK {} failed: {}", what, StatusName(s));
}

// Owns one XNNPACK operator.
struct Operator {
  xnn_operator_t op = nullptr;
  Operator() = default;
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;
  Operator(Operator&& o) noexcept : op(std::exchange(o.op, nullptr)) {}
  ~Operator() {
    if (op != nullptr) xnn_delete_operator(op);
  }
};

// Runs its operators in order; each was set up with the node's buffers at plan time.
class OperatorsKernel : public Kernel {
 public:
  OperatorsKernel(std::vector<Operator> ops, pthreadpool_t pool)
      : ops_(std::move(ops)), pool_(pool) {}
  Status Run() override {
    for (const Operator& o : ops_) {
      xnn_status s = xnn_run_operator(o.op, pool_);
      if (s != xnn_status_success) return Error("XNNPACK run failed: {}", StatusName(s));
    }
    return Status::Ok();
  }

 private:
  std::vector<Operator> ops_;
  pthreadpool_t pool_;
};

Status Unsupported(const graph::Quantization& q) {
  if (q.IsFloat()) return Status::Ok();
  bool weights = q.weight_precision != graph::Precision::kF32;
  return Error("XNNPACK runs f32 only; {} are {}", weights ? "weights" : "activations",
               graph::ToString(weights ? q.weight_precision : q.activation_precision));
}

class XnnpackBackend : public Backend {
 public:
  explicit XnnpackBackend(ThreadPool* pool) : pool_(pool != nullptr ? pool->get() : nullptr) {}

  std::string_view name() const override { return "xnnpack"; }

  Status Supports(const graph::Graph&, const graph::Node& node) const override {
    switch (node.op) {
      case OpType::kConv2d: {
        const auto& a = std::get<graph::Conv2dAttrs>(node.attrs);
        HYBRID_RETURN_IF_ERROR(Unsupported(a.quant));
        if (a.pad_value != 0.f) {
          return Error("XNNPACK pads convolutions with zeros, not with pad_value {}", a.pad_value);
        }
        return Status::Ok();
      }
      case OpType::kDense:
        return Unsupported(std::get<graph::DenseAttrs>(node.attrs).quant);
      case OpType::kSign:
        return Error("sign has no XNNPACK operator");
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d: {
        const auto& a = std::get<graph::Pool2dAttrs>(node.attrs);
        if (a.kernel_h * a.kernel_w <= 1) return Error("XNNPACK pools need a window above 1x1");
        bool padded = a.pad_top + a.pad_bottom + a.pad_left + a.pad_right > 0;
        if (node.op == OpType::kAvgPool2d && a.count_include_pad && padded) {
          return Error("XNNPACK's average pooling excludes padding from the divisor");
        }
        return Status::Ok();
      }
      default:
        return Status::Ok();
    }
  }

  Result<std::unique_ptr<Kernel>> Plan(const NodeContext& ctx) override {
    HYBRID_RETURN_IF_ERROR(Supports(*ctx.graph, *ctx.node));
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    const float* x = ctx.inputs[0];
    float* y = ctx.output;
    const size_t channels = static_cast<size_t>(xs.back());
    const size_t rows = static_cast<size_t>(graph::NumElements(xs)) / channels;
    std::vector<Operator> ops(1);
    xnn_operator_t* op = &ops[0].op;
    switch (ctx.node->op) {
      case OpType::kConv2d: {
        const auto& a = ctx.attrs<graph::Conv2dAttrs>();
        const size_t gin = static_cast<size_t>(xs[3] / a.groups);
        const size_t gout = static_cast<size_t>(ys[3] / a.groups);
        const float* bias = ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr;
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_create_convolution2d_nhwc_f32(
                      a.pad_top, a.pad_right, a.pad_bottom, a.pad_left, a.kernel_h, a.kernel_w,
                      a.stride_h, a.stride_w, a.dilation_h, a.dilation_w, a.groups, gin, gout,
                      static_cast<size_t>(xs[3]), static_cast<size_t>(ys[3]), ctx.inputs[1], bias,
                      -kInf, kInf, 0, op),
                  "convolution create"));
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_setup_convolution2d_nhwc_f32(*op, xs[0], xs[1], xs[2], x, y, pool_),
                  "convolution setup"));
        break;
      }
      case OpType::kDense: {
        const size_t in_f = static_cast<size_t>(xs[1]), out_f = static_cast<size_t>(ys[1]);
        const float* bias = ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr;
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_create_fully_connected_nc_f32(in_f, out_f, in_f, out_f, ctx.inputs[1], bias,
                                                    -kInf, kInf, 0, op),
                  "fully connected create"));
        HYBRID_RETURN_IF_ERROR(Check(xnn_setup_fully_connected_nc_f32(*op, xs[0], x, y, pool_),
                                     "fully connected setup"));
        break;
      }
      case OpType::kBatchNorm:
        return PlanBatchNorm(ctx);
      case OpType::kRelu:
      case OpType::kHardtanh: {
        float lo = 0.f, hi = kInf;
        if (ctx.node->op == OpType::kHardtanh) {
          lo = ctx.attrs<graph::HardtanhAttrs>().min_val;
          hi = ctx.attrs<graph::HardtanhAttrs>().max_val;
        }
        HYBRID_RETURN_IF_ERROR(Check(
            xnn_create_clamp_nc_f32(channels, channels, channels, lo, hi, 0, op), "clamp create"));
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_setup_clamp_nc_f32(*op, rows, x, y, pool_), "clamp setup"));
        break;
      }
      case OpType::kPrelu: {
        // XNNPACK wants one slope per channel; a shared slope is repeated (it packs a copy).
        std::vector<float> slope(channels, ctx.inputs[1][0]);
        if (ctx.input_shapes[1][0] != 1) std::copy_n(ctx.inputs[1], channels, slope.begin());
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_create_prelu_nc_f32(channels, channels, channels, slope.data(), 0, op),
                  "prelu create"));
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_setup_prelu_nc_f32(*op, rows, x, y, pool_), "prelu setup"));
        break;
      }
      case OpType::kAdd: {
        const size_t n = static_cast<size_t>(graph::NumElements(xs));
        HYBRID_RETURN_IF_ERROR(Check(xnn_create_add_nd_f32(-kInf, kInf, 0, op), "add create"));
        HYBRID_RETURN_IF_ERROR(Check(
            xnn_setup_add_nd_f32(*op, 1, &n, 1, &n, x, ctx.inputs[1], y, pool_), "add setup"));
        break;
      }
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d: {
        const auto& a = ctx.attrs<graph::Pool2dAttrs>();
        if (ctx.node->op == OpType::kMaxPool2d) {
          HYBRID_RETURN_IF_ERROR(Check(
              xnn_create_max_pooling2d_nhwc_f32(
                  a.pad_top, a.pad_right, a.pad_bottom, a.pad_left, a.kernel_h, a.kernel_w,
                  a.stride_h, a.stride_w, 1, 1, channels, channels, channels, -kInf, kInf, 0, op),
              "max pooling create"));
          HYBRID_RETURN_IF_ERROR(
              Check(xnn_setup_max_pooling2d_nhwc_f32(*op, xs[0], xs[1], xs[2], x, y, pool_),
                    "max pooling setup"));
        } else {
          HYBRID_RETURN_IF_ERROR(
              Check(xnn_create_average_pooling2d_nhwc_f32(
                        a.pad_top, a.pad_right, a.pad_bottom, a.pad_left, a.kernel_h, a.kernel_w,
                        a.stride_h, a.stride_w, channels, channels, channels, -kInf, kInf, 0, op),
                    "average pooling create"));
          HYBRID_RETURN_IF_ERROR(
              Check(xnn_setup_average_pooling2d_nhwc_f32(*op, xs[0], xs[1], xs[2], x, y, pool_),
                    "average pooling setup"));
        }
        break;
      }
      case OpType::kGlobalAvgPool: {
        HYBRID_RETURN_IF_ERROR(Check(xnn_create_global_average_pooling_nwc_f32(
                                         channels, channels, channels, -kInf, kInf, 0, op),
                                     "global average pooling create"));
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_setup_global_average_pooling_nwc_f32(*op, xs[0], xs[1] * xs[2], x, y, pool_),
                  "global average pooling setup"));
        break;
      }
      case OpType::kFlatten:
        return std::unique_ptr<Kernel>(
            MakeFlattenKernel(x, y, static_cast<size_t>(graph::NumElements(ys))));
      case OpType::kSoftmax: {
        HYBRID_RETURN_IF_ERROR(Check(xnn_create_softmax_nc_f32(channels, channels, channels, 0, op),
                                     "softmax create"));
        HYBRID_RETURN_IF_ERROR(
            Check(xnn_setup_softmax_nc_f32(*op, rows, x, y, pool_), "softmax setup"));
        break;
      }
      case OpType::kConcat:
        return PlanConcat(ctx);
      case OpType::kSign:
        break;
    }
    if (ops[0].op == nullptr) {
      return Error("XNNPACK backend: op {} is not supported", graph::ToString(ctx.node->op));
    }
    return std::unique_ptr<Kernel>(std::make_unique<OperatorsKernel>(std::move(ops), pool_));
  }

 private:
  // y = x * scale[c] + shift[c] as a broadcast multiply then an in-place broadcast add, with
  // the statistics folded in double exactly as the ref backend folds them.
  Result<std::unique_ptr<Kernel>> PlanBatchNorm(const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const size_t channels = static_cast<size_t>(xs.back());
    const size_t rows = static_cast<size_t>(graph::NumElements(xs)) / channels;
    auto folded = std::make_unique<Folded>();
    FoldBatchNorm(*ctx.graph, *ctx.node, static_cast<int>(channels), &folded->scale,
                  &folded->shift);
    const size_t data_shape[2] = {rows, channels};
    const size_t channel_shape[1] = {channels};
    std::vector<Operator> ops(2);
    HYBRID_RETURN_IF_ERROR(
        Check(xnn_create_multiply_nd_f32(-kInf, kInf, 0, &ops[0].op), "multiply create"));
    HYBRID_RETURN_IF_ERROR(
        Check(xnn_setup_multiply_nd_f32(ops[0].op, 2, data_shape, 1, channel_shape, ctx.inputs[0],
                                        folded->scale.data(), ctx.output, pool_),
              "multiply setup"));
    HYBRID_RETURN_IF_ERROR(Check(xnn_create_add_nd_f32(-kInf, kInf, 0, &ops[1].op), "add create"));
    HYBRID_RETURN_IF_ERROR(
        Check(xnn_setup_add_nd_f32(ops[1].op, 2, data_shape, 1, channel_shape, ctx.output,
                                   folded->shift.data(), ctx.output, pool_),
              "add setup"));
    return std::unique_ptr<Kernel>(
        std::make_unique<BatchNormKernel>(std::move(ops), pool_, std::move(folded)));
  }

  // Each input's rows are copied into their columns of the output with a strided copy.
  Result<std::unique_ptr<Kernel>> PlanConcat(const NodeContext& ctx) {
    const graph::Shape& ys = ctx.output_shape;
    int axis = ctx.attrs<graph::ConcatAttrs>().axis;
    if (axis < 0) axis += static_cast<int>(ys.size());
    size_t outer = 1;
    for (int d = 0; d < axis; ++d) outer *= static_cast<size_t>(ys[d]);
    const size_t out_inner = static_cast<size_t>(graph::NumElements(ys)) / outer;
    std::vector<Operator> ops(ctx.inputs.size());
    size_t offset = 0;
    for (size_t i = 0; i < ctx.inputs.size(); ++i) {
      const size_t inner = static_cast<size_t>(graph::NumElements(ctx.input_shapes[i])) / outer;
      HYBRID_RETURN_IF_ERROR(
          Check(xnn_create_copy_nc_x32(inner, inner, out_inner, 0, &ops[i].op), "copy create"));
      HYBRID_RETURN_IF_ERROR(
          Check(xnn_setup_copy_nc_x32(ops[i].op, outer, ctx.inputs[i], ctx.output + offset, pool_),
                "copy setup"));
      offset += inner;
    }
    return std::unique_ptr<Kernel>(std::make_unique<OperatorsKernel>(std::move(ops), pool_));
  }

  struct Folded {
    std::vector<float> scale, shift;
  };
  // The broadcast operands stay referenced by the set-up operators, so the kernel owns them.
  class BatchNormKernel : public OperatorsKernel {
   public:
    BatchNormKernel(std::vector<Operator> ops, pthreadpool_t pool, std::unique_ptr<Folded> folded)
        : OperatorsKernel(std::move(ops), pool), folded_(std::move(folded)) {}

   private:
    std::unique_ptr<Folded> folded_;
  };

  pthreadpool_t pool_;
};

}  // namespace

Result<std::unique_ptr<Backend>> MakeXnnpackBackend(ThreadPool* pool) {
  // xnn_initialize is idempotent but not documented as thread-safe.
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  HYBRID_RETURN_IF_ERROR(Check(xnn_initialize(nullptr), "initialization"));
  return std::unique_ptr<Backend>(std::make_unique<XnnpackBackend>(pool));
}

}  // namespace hybrid::engine
