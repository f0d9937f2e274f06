// The oneDNN backend: each node becomes one oneDNN (v2 API) primitive created at plan time, with
// its memories bound to the executor's buffers, so that Run is a single execute on the stream.
// Activations stay NHWC; conv and dense weights are reordered once into the primitive's layout.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <oneapi/dnnl/dnnl.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/layer_params.h"
#include "engine/onednn_call.h"

// libdnnl is built with the OpenMP runtime and already depends on libgomp; declaring the one call
// we need avoids compiling the engine with -fopenmp.
extern "C" void omp_set_num_threads(int);

namespace hybrid::engine {
namespace {

using dnnl::memory;
using graph::OpType;
using Tag = memory::format_tag;
using Args = std::unordered_map<int, memory>;

constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr size_t kScratchAlignment = 64;

// One scratchpad for every kernel of a backend: the executor runs kernels one at a time, so they
// can share it. It only grows during planning; kernels look up its address when they run because
// a later plan may have moved it.
class Scratchpad {
 public:
  Scratchpad() = default;
  Scratchpad(const Scratchpad&) = delete;
  Scratchpad& operator=(const Scratchpad&) = delete;
  ~Scratchpad() { std::free(data_); }

  bool Reserve(size_t bytes) {
    if (bytes <= bytes_) return true;
    size_t rounded = (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
    void* fresh = std::aligned_alloc(kScratchAlignment, rounded);
    if (fresh == nullptr) return false;
    std::free(data_);
    data_ = fresh;
    bytes_ = rounded;
    return true;
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Sets the OpenMP team size of the calling thread, which oneDNN reads both when it creates a
// primitive (to choose its blocking) and when it executes one.
void SetThreads(int threads) { omp_set_num_threads(threads > 0 ? threads : 1); }

class PrimitiveKernel : public Kernel {
 public:
  PrimitiveKernel(dnnl::primitive primitive, Args args, dnnl::stream stream, int threads,
                  const Scratchpad* scratchpad)
      : primitive_(std::move(primitive)),
        args_(std::move(args)),
        stream_(std::move(stream)),
        threads_(threads),
        scratchpad_(scratchpad) {
    auto it = args_.find(DNNL_ARG_SCRATCHPAD);
    if (it != args_.end()) scratch_memory_ = it->second;
    // The C++ execute converts its argument map to this array on every call, allocating; build
    // it once here instead.
    for (const auto& [arg, mem] : args_) c_args_.push_back({arg, mem.get()});
  }

  Status Run() override {
    SetThreads(threads_);
    if (scratch_memory_) {
      dnnl_status_t s = dnnl_memory_set_data_handle(scratch_memory_.get(), scratchpad_->data());
      if (s != dnnl_success)
        return Error("oneDNN failed to bind its scratchpad (status {})", static_cast<int>(s));
    }
    dnnl_status_t s = dnnl_primitive_execute(primitive_.get(), stream_.get(),
                                             static_cast<int>(c_args_.size()), c_args_.data());
    if (s == dnnl_success) s = dnnl_stream_wait(stream_.get());
    if (s != dnnl_success)
      return Error("oneDNN failed to execute (status {})", static_cast<int>(s));
    return Status::Ok();
  }

  OneDnnCall call() const { return {primitive_.get(), stream_.get(), &c_args_}; }

 private:
  dnnl::primitive primitive_;
  Args args_;  // owns the memories that c_args_ points at
  std::vector<dnnl_exec_arg_t> c_args_;
  dnnl::stream stream_;
  int threads_ = 1;
  const Scratchpad* scratchpad_ = nullptr;
  memory scratch_memory_;
};

// Row-major layout of `shape` in the graph's own axis order.
memory::desc PlainDesc(const graph::Shape& shape) {
  memory::dims dims(shape.begin(), shape.end());
  memory::dims strides(dims.size());
  memory::dim stride = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  return memory::desc(dims, kF32, strides);
}

// A channels-last tensor seen as [outer, C]: per-channel ops broadcast over oneDNN's axis 1.
memory::desc RowsDesc(const graph::Shape& shape) {
  memory::dim channels = shape.back();
  return memory::desc({graph::NumElements(shape) / channels, channels}, kF32, Tag::nc);
}

memory::desc FlatDesc(const graph::Shape& shape) {
  return memory::desc({graph::NumElements(shape)}, kF32, Tag::a);
}

// NHWC buffer described with oneDNN's logical NCHW dimensions.
memory::desc NhwcDesc(const graph::Shape& nhwc) {
  return memory::desc({nhwc[0], nhwc[3], nhwc[1], nhwc[2]}, kF32, Tag::nhwc);
}

std::string_view PrecisionProblem(const graph::Quantization& q, std::string* what) {
  if (q.weight_precision != graph::Precision::kF32) {
    *what = "weights";
    return graph::ToString(q.weight_precision);
  }
  *what = "activations";
  return graph::ToString(q.activation_precision);
}

Status CheckFloat(const graph::Quantization& q) {
  if (q.IsFloat()) return Status::Ok();
  std::string what;
  std::string_view precision = PrecisionProblem(q, &what);
  return Error("oneDNN runs f32 only; {} are {}", what, precision);
}

class OneDnnBackend : public Backend {
 public:
  explicit OneDnnBackend(int threads)
      : threads_(threads), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  std::string_view name() const override { return "onednn"; }

  Status Supports(const graph::Graph&, const graph::Node& node) const override {
    switch (node.op) {
      case OpType::kConv2d: {
        const auto& a = std::get<graph::Conv2dAttrs>(node.attrs);
        HYBRID_RETURN_IF_ERROR(CheckFloat(a.quant));
        if (a.pad_value != 0.f) {
          return Error("oneDNN pads convolutions with zeros, not with pad_value {}", a.pad_value);
        }
        return Status::Ok();
      }
      case OpType::kDense:
        return CheckFloat(std::get<graph::DenseAttrs>(node.attrs).quant);
      case OpType::kSign:
        return Error("sign has no oneDNN primitive");
      default:
        return Status::Ok();
    }
  }

  Result<std::unique_ptr<Kernel>> Plan(const NodeContext& ctx) override {
    HYBRID_RETURN_IF_ERROR(Supports(*ctx.graph, *ctx.node));
    try {
      SetThreads(threads_);
      return PlanNode(ctx);
    } catch (const dnnl::error& e) {
      return Error("oneDNN: {}", e.what());
    } catch (const std::exception& e) {
      return Error("oneDNN backend: {}", e.what());
    }
  }

 private:
  // Binds a buffer the kernel only reads; oneDNN's memory takes a non-const handle regardless.
  memory Bind(const memory::desc& desc, const float* data) {
    return memory(desc, engine_, const_cast<float*>(data));
  }
  memory Bind(const memory::desc& desc, float* data) { return memory(desc, engine_, data); }

  static dnnl::primitive_attr UserScratchpad() {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return attr;
  }

  // Weights in the layout the primitive chose: the model's bytes when it already matches, else
  // a copy reordered once here.
  memory PackWeights(const memory::desc& wanted, const memory::desc& given, const float* data) {
    memory user = Bind(given, data);
    if (wanted == given) return user;
    memory packed(wanted, engine_);
    dnnl::reorder(user, packed).execute(stream_, user, packed);
    stream_.wait();
    return packed;
  }

  Result<std::unique_ptr<Kernel>> Finish(const dnnl::primitive_desc_base& pd,
                                         dnnl::primitive primitive, Args args) {
    memory::desc scratch = pd.scratchpad_desc();
    if (scratch.get_size() > 0) {
      if (!scratchpad_.Reserve(scratch.get_size())) {
        return Error("out of memory allocating a {}-byte oneDNN scratchpad", scratch.get_size());
      }
      args[DNNL_ARG_SCRATCHPAD] = memory(scratch, engine_, scratchpad_.data());
    }
    return std::unique_ptr<Kernel>(std::make_unique<PrimitiveKernel>(
        std::move(primitive), std::move(args), stream_, threads_, &scratchpad_));
  }

  Result<std::unique_ptr<Kernel>> PlanNode(const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    const float* x = ctx.inputs[0];
    float* y = ctx.output;
    switch (ctx.node->op) {
      case OpType::kConv2d:
        return PlanConv(ctx);
      case OpType::kDense:
        return PlanDense(ctx);
      case OpType::kBatchNorm:
        return PlanBatchNorm(ctx);
      case OpType::kRelu:
        return PlanEltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f, ctx);
      case OpType::kHardtanh: {
        const auto& a = ctx.attrs<graph::HardtanhAttrs>();
        return PlanEltwise(dnnl::algorithm::eltwise_clip, a.min_val, a.max_val, ctx);
      }
      case OpType::kPrelu: {
        memory::desc data = RowsDesc(xs);
        memory::desc slope({1, ctx.input_shapes[1][0]}, kF32, Tag::nc);
        dnnl::prelu_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, data, slope},
                                               UserScratchpad(), engine_);
        Args args{{DNNL_ARG_SRC, Bind(data, x)},
                  {DNNL_ARG_WEIGHTS, Bind(slope, ctx.inputs[1])},
                  {DNNL_ARG_DST, Bind(data, y)}};
        return Finish(pd, dnnl::prelu_forward(pd), std::move(args));
      }
      case OpType::kAdd: {
        memory::desc data = FlatDesc(xs);
        dnnl::binary::primitive_desc pd({dnnl::algorithm::binary_add, data, data, data},
                                        UserScratchpad(), engine_);
        Args args{{DNNL_ARG_SRC_0, Bind(data, x)},
                  {DNNL_ARG_SRC_1, Bind(data, ctx.inputs[1])},
                  {DNNL_ARG_DST, Bind(data, y)}};
        return Finish(pd, dnnl::binary(pd), std::move(args));
      }
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d: {
        const auto& a = ctx.attrs<graph::Pool2dAttrs>();
        dnnl::algorithm alg = dnnl::algorithm::pooling_max;
        // Ref divides by the window clipped to the padded input; output sizes round down, so a
        // window never leaves the padded input and oneDNN's include_padding divisor (the full
        // kernel) is the same.
        if (ctx.node->op == OpType::kAvgPool2d) {
          alg = a.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                    : dnnl::algorithm::pooling_avg_exclude_padding;
        }
        return PlanPool(alg, {a.stride_h, a.stride_w}, {a.kernel_h, a.kernel_w},
                        {a.pad_top, a.pad_left}, {a.pad_bottom, a.pad_right}, ctx);
      }
      case OpType::kGlobalAvgPool:
        return PlanPool(dnnl::algorithm::pooling_avg_exclude_padding, {1, 1}, {xs[1], xs[2]},
                        {0, 0}, {0, 0}, ctx);
      case OpType::kFlatten:
        return std::unique_ptr<Kernel>(
            MakeFlattenKernel(x, y, static_cast<size_t>(graph::NumElements(ys))));
      case OpType::kSoftmax: {
        memory::desc data = RowsDesc(xs);
        dnnl::softmax_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, data, 1},
                                                 UserScratchpad(), engine_);
        Args args{{DNNL_ARG_SRC, Bind(data, x)}, {DNNL_ARG_DST, Bind(data, y)}};
        return Finish(pd, dnnl::softmax_forward(pd), std::move(args));
      }
      case OpType::kConcat: {
        // Pure data movement, so the graph's own axis order serves as oneDNN's.
        int axis = ctx.attrs<graph::ConcatAttrs>().axis;
        if (axis < 0) axis += static_cast<int>(ys.size());
        std::vector<memory::desc> srcs;
        Args args;
        for (size_t i = 0; i < ctx.inputs.size(); ++i) {
          srcs.push_back(PlainDesc(ctx.input_shapes[i]));
          args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = Bind(srcs.back(), ctx.inputs[i]);
        }
        memory::desc dst = PlainDesc(ys);
        dnnl::concat::primitive_desc pd(dst, axis, srcs, engine_, UserScratchpad());
        args[DNNL_ARG_DST] = Bind(dst, y);
        return Finish(pd, dnnl::concat(pd), std::move(args));
      }
      case OpType::kSign:
        break;
    }
    return Error("oneDNN backend: op {} is not supported", graph::ToString(ctx.node->op));
  }

  Result<std::unique_ptr<Kernel>> PlanConv(const NodeContext& ctx) {
    const auto& a = ctx.attrs<graph::Conv2dAttrs>();
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    memory::dim groups = a.groups, out_c = ys[3], in_c = xs[3];
    // The model's [O][KH][KW][I/g] is oneDNN's ohwi, or gohwi once O is split into groups.
    memory::desc given =
        groups == 1 ? memory::desc({out_c, in_c, a.kernel_h, a.kernel_w}, kF32, Tag::ohwi)
                    : memory::desc({groups, out_c / groups, in_c / groups, a.kernel_h, a.kernel_w},
                                   kF32, Tag::gohwi);
    // oneDNN counts dilation from 0 (no gap), the IR from 1.
    return PlanConvOf(ctx, NhwcDesc(xs), given, NhwcDesc(ys), {a.stride_h, a.stride_w},
                      {a.dilation_h - 1, a.dilation_w - 1}, {a.pad_top, a.pad_left},
                      {a.pad_bottom, a.pad_right});
  }

  // A direct convolution of the node's input (as `src`) into its output (as `dst`, out_c
  // channels) with its weights (laid out as `given`) and bias, when it has one.
  Result<std::unique_ptr<Kernel>> PlanConvOf(const NodeContext& ctx, const memory::desc& src,
                                             const memory::desc& given, const memory::desc& dst,
                                             const memory::dims& strides,
                                             const memory::dims& dilation,
                                             const memory::dims& pad_l, const memory::dims& pad_r) {
    memory::desc any(given.dims(), kF32, Tag::any);
    bool has_bias = ctx.inputs.size() > 2;
    memory::desc bias = has_bias ? memory::desc({dst.dims()[1]}, kF32, Tag::x) : memory::desc();
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::convolution_direct, src, any, bias, dst,
                                         strides, dilation, pad_l, pad_r);
    dnnl::convolution_forward::primitive_desc pd(desc, UserScratchpad(), engine_);
    Args args{{DNNL_ARG_SRC, Bind(src, ctx.inputs[0])},
              {DNNL_ARG_WEIGHTS, PackWeights(pd.weights_desc(), given, ctx.inputs[1])},
              {DNNL_ARG_DST, Bind(dst, ctx.output)}};
    if (has_bias) args[DNNL_ARG_BIAS] = Bind(bias, ctx.inputs[2]);
    return Finish(pd, dnnl::convolution_forward(pd), std::move(args));
  }

  Result<std::unique_ptr<Kernel>> PlanDense(const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    memory::desc src({xs[0], xs[1]}, kF32, Tag::nc), dst({ys[0], ys[1]}, kF32, Tag::nc);
    memory::desc given({ys[1], xs[1]}, kF32, Tag::oi);
    memory::desc any(given.dims(), kF32, Tag::any);
    bool has_bias = ctx.inputs.size() > 2;
    memory::desc bias = has_bias ? memory::desc({ys[1]}, kF32, Tag::x) : memory::desc();
    dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src, any, bias, dst);
    dnnl::inner_product_forward::primitive_desc pd(desc, UserScratchpad(), engine_);
    // Without AVX-512 oneDNN computes the inner product with its sgemm, whose summation order
    // depends on the batch: a sample's logits would then change with the batch it is computed in
    // (the server's dynamic batching, the session's chunks). A 1x1 convolution over the batch laid
    // out as one row of pixels has the same memory and sums each pixel alike whatever the row's
    // length (measured on AVX2 for batches 1-32), and at batch 8-32 it is no slower.
    if (std::string_view(pd.impl_info_str()).find("gemm") != std::string_view::npos) {
      return PlanDenseAsConv(ctx);
    }
    Args args{{DNNL_ARG_SRC, Bind(src, ctx.inputs[0])},
              {DNNL_ARG_WEIGHTS, PackWeights(pd.weights_desc(), given, ctx.inputs[1])},
              {DNNL_ARG_DST, Bind(dst, ctx.output)}};
    if (has_bias) args[DNNL_ARG_BIAS] = Bind(bias, ctx.inputs[2]);
    return Finish(pd, dnnl::inner_product_forward(pd), std::move(args));
  }

  // Dense [N, in] x [out, in]^T as a 1x1 convolution of one image of 1 x N pixels: [N, in] is
  // that image in nhwc, [out][in] the weights in ohwi.
  Result<std::unique_ptr<Kernel>> PlanDenseAsConv(const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    const memory::dim n = xs[0], in_c = xs[1], out_c = ys[1];
    return PlanConvOf(ctx, memory::desc({1, in_c, 1, n}, kF32, Tag::nhwc),
                      memory::desc({out_c, in_c, 1, 1}, kF32, Tag::ohwi),
                      memory::desc({1, out_c, 1, n}, kF32, Tag::nhwc), {1, 1}, {0, 0}, {0, 0},
                      {0, 0});
  }

  // Folds the statistics into a per-channel scale and shift in double exactly as ref does, then
  // runs oneDNN's batchnorm with mean 0, variance 1 and epsilon 0: its normalization becomes
  // x * 1 / sqrt(1) and leaves the same x * scale + shift as ref.
  Result<std::unique_ptr<Kernel>> PlanBatchNorm(const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const memory::dim channels = xs.back();
    memory::desc data = RowsDesc(xs);
    memory::desc per_channel({channels}, kF32, Tag::x);
    memory scale(per_channel, engine_), shift(per_channel, engine_), mean(per_channel, engine_),
        variance(per_channel, engine_);
    auto* s = static_cast<float*>(scale.get_data_handle());
    auto* t = static_cast<float*>(shift.get_data_handle());
    auto* m = static_cast<float*>(mean.get_data_handle());
    auto* v = static_cast<float*>(variance.get_data_handle());
    std::vector<float> folded_scale, folded_shift;
    FoldBatchNorm(*ctx.graph, *ctx.node, static_cast<int>(channels), &folded_scale, &folded_shift);
    for (memory::dim c = 0; c < channels; ++c) {
      s[c] = folded_scale[c];
      t[c] = folded_shift[c];
      m[c] = 0.f;
      v[c] = 1.f;
    }
    dnnl::batch_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, data, 0.f,
                                                 dnnl::normalization_flags::use_global_stats |
                                                     dnnl::normalization_flags::use_scale |
                                                     dnnl::normalization_flags::use_shift);
    dnnl::batch_normalization_forward::primitive_desc pd(desc, UserScratchpad(), engine_);
    Args args{{DNNL_ARG_SRC, Bind(data, ctx.inputs[0])},
              {DNNL_ARG_DST, Bind(data, ctx.output)},
              {DNNL_ARG_SCALE, scale},
              {DNNL_ARG_SHIFT, shift},
              {DNNL_ARG_MEAN, mean},
              {DNNL_ARG_VARIANCE, variance}};
    return Finish(pd, dnnl::batch_normalization_forward(pd), std::move(args));
  }

  Result<std::unique_ptr<Kernel>> PlanEltwise(dnnl::algorithm alg, float alpha, float beta,
                                              const NodeContext& ctx) {
    memory::desc data = FlatDesc(ctx.input_shapes[0]);
    dnnl::eltwise_forward::primitive_desc pd(
        {dnnl::prop_kind::forward_inference, alg, data, alpha, beta}, UserScratchpad(), engine_);
    Args args{{DNNL_ARG_SRC, Bind(data, ctx.inputs[0])}, {DNNL_ARG_DST, Bind(data, ctx.output)}};
    return Finish(pd, dnnl::eltwise_forward(pd), std::move(args));
  }

  // The global pool's [N,C] output is the same bytes as an NHWC [N,1,1,C].
  Result<std::unique_ptr<Kernel>> PlanPool(dnnl::algorithm alg, const memory::dims& strides,
                                           const memory::dims& kernel,
                                           const memory::dims& padding_l,
                                           const memory::dims& padding_r, const NodeContext& ctx) {
    const graph::Shape& xs = ctx.input_shapes[0];
    const graph::Shape& ys = ctx.output_shape;
    graph::Shape out = ys.size() == 4 ? ys : graph::Shape{xs[0], 1, 1, xs[3]};
    memory::desc src = NhwcDesc(xs), dst = NhwcDesc(out);
    dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, alg, src, dst, strides,
                                     kernel, padding_l, padding_r);
    dnnl::pooling_forward::primitive_desc pd(desc, UserScratchpad(), engine_);
    Args args{{DNNL_ARG_SRC, Bind(src, ctx.inputs[0])}, {DNNL_ARG_DST, Bind(dst, ctx.output)}};
    return Finish(pd, dnnl::pooling_forward(pd), std::move(args));
  }

  int threads_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  Scratchpad scratchpad_;
};

}  // namespace

std::optional<OneDnnCall> OneDnnCallOf(const Kernel& kernel) {
  if (const auto* k = dynamic_cast<const PrimitiveKernel*>(&kernel)) return k->call();
  return std::nullopt;
}

Result<std::unique_ptr<Backend>> MakeOneDnnBackend(ThreadPool* pool) {
  int threads = pool != nullptr ? pool->threads() : 1;
  try {
    SetThreads(threads);
    return std::unique_ptr<Backend>(std::make_unique<OneDnnBackend>(threads));
  } catch (const std::exception& e) {
    return Error("cannot create the oneDNN CPU engine: {}", e.what());
  }
}

}  // namespace hybrid::engine
