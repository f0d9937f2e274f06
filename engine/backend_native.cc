// The native backend: our own SIMD kernels for the quantized convolutions and dense layers they
// cover (binary and 2-bit in kernels/binary.h, int8/int4 in kernels/int8.h), a float backend
// (oneDNN by default) for everything else. Weights are packed and indirection buffers built at
// plan time; Run quantizes or bitpacks the input and convolves.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/layer_params.h"
#include "kernels/binary.h"
#include "kernels/int8.h"
#include "kernels/ref.h"

namespace hybrid::engine {
namespace {

using graph::OpType;
using graph::Precision;

template <typename T>
struct AlignedFree {
  void operator()(T* p) const { std::free(p); }
};
template <typename T>
using AlignedArray = std::unique_ptr<T[], AlignedFree<T>>;

// A zero-initialized 64-byte-aligned array of n values (n may be 0).
template <typename T>
AlignedArray<T> MakeAligned(size_t n) {
  const size_t bytes = (std::max<size_t>(n * sizeof(T), 1) + 63) / 64 * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (p != nullptr) std::memset(p, 0, bytes);
  return AlignedArray<T>(p);
}

// A binary conv2d or dense layer (the latter as a 1x1 convolution of a 1x1 image).
class BinaryConvKernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx) {
    auto k = std::unique_ptr<BinaryConvKernel>(new BinaryConvKernel());
    k->p_ = ConvParamsOf(ctx);
    const kernels::Conv2dParams& p = k->p_;
    const int taps = p.kernel_h * p.kernel_w;
    const int64_t per_channel = static_cast<int64_t>(taps) * (p.in_c / p.groups);
    const float* w = ctx.inputs[1];
    k->packed_w_ = MakeAligned<uint64_t>(kernels::BinaryConvPackedWeightsWords(p));
    k->tap_sums_.resize(static_cast<size_t>(p.out_c) * taps);
    k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
    const int64_t in_pixels = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    k->packed_in_ = MakeAligned<uint64_t>(static_cast<size_t>(in_pixels) * p.groups *
                                          kernels::PackedWords(p.in_c / p.groups));
    if (!k->packed_w_ || !k->packed_in_) return Error("out of memory packing a binary layer");
    kernels::PackBinaryConvWeights(p, w, k->packed_w_.get());
    kernels::BinaryConvTapSums(p, w, k->tap_sums_.data());
    kernels::BinaryConvIndirection(p, k->offsets_.data());
    k->scales_.resize(p.out_c);
    kernels::BinaryWeightScalesRef(p.out_c, per_channel, w, k->scales_.data());
    k->output_ = {k->scales_.data(), ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr, false};
    k->in_pixels_ = in_pixels;
    k->in_ = ctx.inputs[0];
    k->out_ = ctx.output;
    k->pool_ = ctx.pool;
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    kernels::BitpackF32(in_pixels_, p_.in_c, p_.groups, nullptr, in_, packed_in_.get());
    auto rows = [&](size_t begin, size_t end) {
      kernels::BinaryConv2d(p_, packed_in_.get(), packed_w_.get(), tap_sums_.data(),
                            offsets_.data(), output_, out_, static_cast<int>(begin),
                            static_cast<int>(end));
    };
    pool_->ParallelFor(static_cast<size_t>(p_.batch) * p_.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  BinaryConvKernel() = default;
  kernels::Conv2dParams p_;
  AlignedArray<uint64_t> packed_w_, packed_in_;
  std::vector<int32_t> tap_sums_;
  std::vector<int64_t> offsets_;
  std::vector<float> scales_;
  kernels::BinaryOutput output_;
  int64_t in_pixels_ = 0;
  const float* in_ = nullptr;
  float* out_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

// A layer with k-bit weights and activations: activations quantized to u8, then the VNNI-style
// kernel; weights packed, pad pixel and indirection prepared at plan time.
class IntegerKernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx) {
    auto k = std::unique_ptr<IntegerKernel>(new IntegerKernel(MakeIntegerLayer(ctx)));
    const kernels::Conv2dParams& p = k->layer_.p;
    const int taps = p.kernel_h * p.kernel_w;
    // Weights of 4 bits or fewer are kept as nibbles: half the memory, unpacked on the fly.
    k->nibbles_ = graph::Bits(QuantizationOf(*ctx.node)->weight_precision) <= 4;
    k->packed_w_ = MakeAligned<int8_t>(k->nibbles_ ? kernels::Int4ConvPackedWeightsBytes(p)
                                                   : kernels::Int8ConvPackedWeightsBytes(p));
    k->pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    k->quantized_ = MakeAligned<uint8_t>(static_cast<size_t>(k->pixels_) * p.groups *
                                         kernels::Int8Channels(p.in_c / p.groups));
    if (!k->packed_w_ || !k->quantized_) return Error("out of memory packing an integer layer");
    if (k->nibbles_) {
      kernels::PackInt4ConvWeights(p, k->layer_.weights.data(),
                                   reinterpret_cast<uint8_t*>(k->packed_w_.get()));
    } else {
      kernels::PackInt8ConvWeights(p, k->layer_.weights.data(), k->packed_w_.get());
    }
    k->sums_.resize(p.out_c);
    kernels::Int8ConvWeightSums(p, k->layer_.weights.data(), k->sums_.data());
    k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
    kernels::Int8ConvIndirection(p, k->offsets_.data());
    k->output_ = {k->layer_.mul.data(), ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr,
                  k->layer_.act.input_zero(), false};
    k->in_ = ctx.inputs[0];
    k->out_ = ctx.output;
    k->pool_ = ctx.pool;
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    const kernels::Conv2dParams& p = layer_.p;
    kernels::QuantizeU8(pixels_, p.in_c, p.groups, layer_.act, in_, quantized_.get());
    auto rows = [&](size_t begin, size_t end) {
      if (nibbles_) {
        kernels::Int4Conv2d(p, quantized_.get(), layer_.pad_pixel.data(),
                            reinterpret_cast<const uint8_t*>(packed_w_.get()), sums_.data(),
                            offsets_.data(), output_, out_, static_cast<int>(begin),
                            static_cast<int>(end));
      } else {
        kernels::Int8Conv2d(p, quantized_.get(), layer_.pad_pixel.data(), packed_w_.get(),
                            sums_.data(), offsets_.data(), output_, out_, static_cast<int>(begin),
                            static_cast<int>(end));
      }
    };
    pool_->ParallelFor(static_cast<size_t>(p.batch) * p.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  explicit IntegerKernel(IntegerLayer layer) : layer_(std::move(layer)) {}
  IntegerLayer layer_;
  bool nibbles_ = false;
  AlignedArray<int8_t> packed_w_;
  AlignedArray<uint8_t> quantized_;
  std::vector<int32_t> sums_;
  std::vector<int64_t> offsets_;
  kernels::Int8Output output_;
  int64_t pixels_ = 0;
  const float* in_ = nullptr;
  float* out_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

// A 2-bit layer (int2 weights and activations): bit planes and popcounts instead of bytes.
class Bit2Kernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx) {
    auto k = std::unique_ptr<Bit2Kernel>(new Bit2Kernel(MakeIntegerLayer(ctx)));
    const kernels::Conv2dParams& p = k->layer_.p;
    const int taps = p.kernel_h * p.kernel_w;
    const size_t pixel_words =
        static_cast<size_t>(p.groups) * kernels::PackedWords(p.in_c / p.groups) * 2;
    k->pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    k->packed_w_ = MakeAligned<uint64_t>(kernels::Bit2ConvPackedWeightsWords(p));
    k->planes_ = MakeAligned<uint64_t>(static_cast<size_t>(k->pixels_) * pixel_words);
    if (!k->packed_w_ || !k->planes_) return Error("out of memory packing a 2-bit layer");
    kernels::PackBit2ConvWeights(p, k->layer_.weights.data(), k->packed_w_.get());
    k->pad_.resize(pixel_words);
    kernels::Bit2PadPixel(p, k->layer_.act, k->pad_.data());
    k->zero_.resize(p.out_c);
    kernels::Int8ConvWeightSums(p, k->layer_.weights.data(), k->zero_.data());
    const int u_zero = k->layer_.act.zero_point - k->layer_.act.qmin;
    for (int32_t& z : k->zero_) z *= u_zero;
    k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
    kernels::BinaryConvIndirection(p, k->offsets_.data());
    k->output_ = {k->layer_.mul.data(), ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr, false};
    k->in_ = ctx.inputs[0];
    k->out_ = ctx.output;
    k->pool_ = ctx.pool;
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    const kernels::Conv2dParams& p = layer_.p;
    kernels::QuantizeBitplanes2(pixels_, p.in_c, p.groups, layer_.act, in_, planes_.get());
    auto rows = [&](size_t begin, size_t end) {
      kernels::Bit2Conv2d(p, planes_.get(), pad_.data(), packed_w_.get(), zero_.data(),
                          offsets_.data(), output_, out_, static_cast<int>(begin),
                          static_cast<int>(end));
    };
    pool_->ParallelFor(static_cast<size_t>(p.batch) * p.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  explicit Bit2Kernel(IntegerLayer layer) : layer_(std::move(layer)) {}
  IntegerLayer layer_;
  AlignedArray<uint64_t> packed_w_, planes_;
  std::vector<uint64_t> pad_;
  std::vector<int32_t> zero_;
  std::vector<int64_t> offsets_;
  kernels::BinaryOutput output_;
  int64_t pixels_ = 0;
  const float* in_ = nullptr;
  float* out_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

class NativeBackend : public Backend {
 public:
  explicit NativeBackend(std::unique_ptr<Backend> float_backend)
      : float_(std::move(float_backend)) {}

  std::string_view name() const override { return "native"; }

  std::string_view NameFor(const graph::Node& node) const override {
    return Own(node) ? name() : float_->NameFor(node);
  }

  Status Supports(const graph::Graph& graph, const graph::Node& node) const override {
    const graph::Quantization* q = QuantizationOf(node);
    if (q == nullptr || q->IsFloat()) return float_->Supports(graph, node);
    if (IsIntegerLayer(*q)) {
      if (node.op == OpType::kConv2d) {
        const auto& a = std::get<graph::Conv2dAttrs>(node.attrs);
        if (a.kernel_h * a.kernel_w > kernels::kMaxInt8Taps) {
          return Error("integer convolutions take at most {} taps", kernels::kMaxInt8Taps);
        }
      }
      return Status::Ok();
    }
    if (q->weight_precision != Precision::kBinary ||
        q->activation_precision != Precision::kBinary) {
      return Error(
          "native kernels for {} weights with {} activations are not built (mixed "
          "precisions run as fake quantization on ref)",
          graph::ToString(q->weight_precision), graph::ToString(q->activation_precision));
    }
    if (node.op == OpType::kConv2d) {
      const auto& a = std::get<graph::Conv2dAttrs>(node.attrs);
      if (a.pad_value != 0.f && a.pad_value != 1.f) {
        return Error("binary convolutions pad with +1 or 0, not {}", a.pad_value);
      }
      if (a.kernel_h * a.kernel_w > kernels::kMaxBinaryTaps) {
        return Error("binary convolutions take at most {} taps", kernels::kMaxBinaryTaps);
      }
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<Kernel>> Plan(const NodeContext& ctx) override {
    if (!Own(*ctx.node)) return float_->Plan(ctx);
    HYBRID_RETURN_IF_ERROR(Supports(*ctx.graph, *ctx.node));
    const graph::Quantization& q = *QuantizationOf(*ctx.node);
    if (q.weight_precision == Precision::kInt2 && q.activation_precision == Precision::kInt2) {
      return Bit2Kernel::Create(ctx);
    }
    if (IsIntegerLayer(q)) return IntegerKernel::Create(ctx);
    return BinaryConvKernel::Create(ctx);
  }

 private:
  static bool Own(const graph::Node& node) {
    const graph::Quantization* q = QuantizationOf(node);
    return q != nullptr && !q->IsFloat();
  }

  std::unique_ptr<Backend> float_;
};

}  // namespace

Result<std::unique_ptr<Backend>> MakeNativeBackend(ThreadPool* pool,
                                                   std::string_view float_backend) {
  if (float_backend == "native")
    return Error("the native backend's float backend cannot be native");
  HYBRID_ASSIGN_OR_RETURN(std::unique_ptr<Backend> f, MakeBackend(float_backend, pool));
  return std::unique_ptr<Backend>(std::make_unique<NativeBackend>(std::move(f)));
}

}  // namespace hybrid::engine
