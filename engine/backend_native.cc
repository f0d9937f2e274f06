// The native backend: our own SIMD kernels for the quantized convolutions and dense layers they
// cover (binary and 2-bit in kernels/binary.h, int8/int4 in kernels/int8.h), a float backend
// (oneDNN by default) for everything else. Weights are packed and indirection buffers built at
// plan time; Run quantizes or bitpacks the input and convolves.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/layer_params.h"
#include "engine/native_fusion.h"
#include "kernels/binary.h"
#include "kernels/bit2_lut.h"
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

// What planning a native layer knows beyond its node: the tensors it reads or writes in a
// native kernel's own form, and, for a bits producer, its thresholds.
struct LayerIo {
  const native::HeldTensor* in = nullptr;
  const native::NativePlan::Producer* producer = nullptr;
  native::HeldTensor* out = nullptr;
};

// Where a layer writes: floats through its transform (with the nodes fused after it), or the held
// tensor its consumers read; 2-bit planes through thresholds on the sums where
// kernels::Planes2Thresholds gives them for sums up to `sum_bound` in magnitude. Transform arrays
// and thresholds go to `storage`.
kernels::ConvOutput OutputOf(const NodeContext& ctx, const LayerIo& io, int out_c, const float* mul,
                             int64_t sum_bound, native::TransformStorage* storage) {
  kernels::ConvOutput o;
  if (io.out != nullptr) {
    o.kind = io.out->kind;
    o.data = io.out->data();
    o.groups = io.out->groups;
    o.quant = io.out->quant;
    o.threshold = io.producer->threshold.data();
  } else {
    o.data = ctx.output;
  }
  o.transform = native::FusedTransform(*ctx.graph, ctx.fused, out_c, mul,
                                       ctx.inputs.size() > 2 ? ctx.inputs[2] : nullptr, storage);
  if (o.kind == kernels::OutputKind::kPlanes2) {
    // Three compares per channel instead of the float transform and quantization: the
    // bit-serial kernel on a 1x1 layer 1.13x as fast (bench/README.md).
    storage->plane_threshold.assign(4 * static_cast<size_t>(out_c), 0);
    const bool thresholds =
        sum_bound < std::numeric_limits<int32_t>::max() &&
        kernels::Planes2Thresholds(o.transform, o.quant, out_c, static_cast<int32_t>(sum_bound),
                                   storage->plane_threshold.data());
    o.threshold = thresholds ? storage->plane_threshold.data() : nullptr;
  }
  return o;
}

// The largest magnitude of an integer layer's sums: per product, a stored activation less the
// zero point (u8, so below 256) times a weight within s8.
int64_t IntegerSumBound(const kernels::Conv2dParams& p) {
  return static_cast<int64_t>(p.kernel_h) * p.kernel_w * (p.in_c / p.groups) * 255 * 128;
}

// A binary conv2d or dense layer (the latter as a 1x1 convolution of a 1x1 image). Its input is
// a float tensor it bitpacks, or a tensor another native kernel left bitpacked. XOR-popcount, or
// on AMX the integer kernel's tiles where kernels::BinaryConvOnTiles says they run the layer.
class BinaryConvKernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx, const LayerIo& io) {
    auto k = std::unique_ptr<BinaryConvKernel>(new BinaryConvKernel());
    k->p_ = ConvParamsOf(ctx);
    const kernels::Conv2dParams& p = k->p_;
    const int taps = p.kernel_h * p.kernel_w;
    const int64_t per_channel = static_cast<int64_t>(taps) * (p.in_c / p.groups);
    const float* w = ctx.inputs[1];
    // Only the signs count; a bits producer negates the channels whose thresholds read -d.
    const bool flips = io.out != nullptr && io.out->kind == kernels::OutputKind::kBits;
    std::vector<float> signs(static_cast<size_t>(p.out_c * per_channel));
    for (size_t i = 0; i < signs.size(); ++i) {
      const bool flip = flips && io.producer->flip[i / per_channel] != 0;
      signs[i] = (w[i] < 0.f) != flip ? -1.f : 1.f;
    }
    k->in_pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    if (io.in != nullptr) {
      k->in_words_ = static_cast<const uint64_t*>(io.in->data());
    } else {
      k->packed_in_ = MakeAligned<uint64_t>(static_cast<size_t>(k->in_pixels_) * p.groups *
                                            kernels::PackedWords(p.in_c / p.groups));
      if (!k->packed_in_) return Error("out of memory packing a binary layer");
      k->in_words_ = k->packed_in_.get();
    }
    k->pool_ = ctx.pool;
    if (kernels::BinaryConvOnTiles(p)) {
      HYBRID_RETURN_IF_ERROR(k->PlanTiles(signs));
    } else {
      k->packed_w_ = MakeAligned<uint64_t>(kernels::BinaryConvPackedWeightsWords(p));
      if (!k->packed_w_) return Error("out of memory packing a binary layer");
      k->tap_sums_.resize(static_cast<size_t>(p.out_c) * taps);
      k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
      kernels::PackBinaryConvWeights(p, signs.data(), k->packed_w_.get());
      kernels::BinaryConvTapSums(p, signs.data(), k->tap_sums_.data());
      kernels::BinaryConvIndirection(p, k->offsets_.data());
    }
    k->scales_.resize(p.out_c);
    kernels::BinaryWeightScalesRef(p.out_c, per_channel, w, k->scales_.data());
    k->out_ = OutputOf(ctx, io, p.out_c, k->scales_.data(), per_channel, &k->storage_);
    k->in_ = ctx.inputs[0];
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    if (packed_in_) {
      kernels::BitpackF32(in_pixels_, p_.in_c, p_.groups, nullptr, nullptr, in_, packed_in_.get());
    }
    const size_t rows = static_cast<size_t>(p_.batch) * p_.out_h;
    if (tiles_scratch_) {
      auto tiles = [&](size_t begin, size_t end) {
        kernels::BinaryConv2dOnTiles(
            p_, in_words_, tiles_pad_.data(), tiles_w_.get(), tiles_zero_.data(), out_,
            static_cast<int>(begin), static_cast<int>(end),
            tiles_scratch_.get() + begin / split_.rows_per_call * split_.scratch_bytes);
      };
      pool_->ParallelFor(rows, split_.rows_per_call, tiles);
      return Status::Ok();
    }
    auto popcount = [&](size_t begin, size_t end) {
      kernels::BinaryConv2d(p_, in_words_, packed_w_.get(), tap_sums_.data(), offsets_.data(), out_,
                            static_cast<int>(begin), static_cast<int>(end));
    };
    pool_->ParallelFor(rows, 1, popcount);
    return Status::Ok();
  }

 private:
  BinaryConvKernel() = default;

  // The layer on the AMX tiles (kernels::BinaryConvOnTiles), in place of the XOR-popcount form:
  // the signs as s8 weights, their sums, the pad pixel and a scratch per call.
  Status PlanTiles(const std::vector<float>& signs) {
    tiles_w_ = MakeAligned<int8_t>(kernels::Int8ConvPackedWeightsBytes(p_));
    split_ = kernels::SplitInt8ConvRows(p_, pool_->threads());
    tiles_scratch_ = MakeAligned<uint8_t>(split_.scratch_bytes * split_.calls);
    if (!tiles_w_ || !tiles_scratch_) return Error("out of memory planning a binary layer's tiles");
    tiles_zero_.resize(p_.out_c);
    kernels::PackBinaryOnTilesWeights(p_, signs.data(), tiles_w_.get(), tiles_zero_.data());
    tiles_pad_.resize(static_cast<size_t>(p_.groups) * kernels::Int8Channels(p_.in_c / p_.groups));
    kernels::BinaryOnTilesPadPixel(p_, tiles_pad_.data());
    return Status::Ok();
  }

  kernels::Conv2dParams p_;
  AlignedArray<uint64_t> packed_w_, packed_in_;
  const uint64_t* in_words_ = nullptr;
  std::vector<int32_t> tap_sums_;
  std::vector<int64_t> offsets_;
  std::vector<float> scales_;
  native::TransformStorage storage_;
  kernels::ConvOutput out_;
  int64_t in_pixels_ = 0;
  const float* in_ = nullptr;
  ThreadPool* pool_ = nullptr;
  AlignedArray<int8_t> tiles_w_;
  std::vector<int32_t> tiles_zero_;
  std::vector<uint8_t> tiles_pad_;
  kernels::Int8ConvRowSplit split_;
  AlignedArray<uint8_t> tiles_scratch_;  // null: XOR-popcount
};

// Channelwise nodes folded into bitpacking thresholds: the float input packed straight into the
// bits its binary consumers read.
class PackKernel : public Kernel {
 public:
  PackKernel(const float* in, const native::NativePlan::Packer& packer, native::HeldTensor* out)
      : in_(in), packer_(packer), out_(out) {}
  Status Run() override {
    kernels::BitpackF32(out_->pixels, out_->channels, out_->groups, packer_.below.data(),
                        packer_.above.data(), in_, static_cast<uint64_t*>(out_->data()));
    return Status::Ok();
  }

 private:
  const float* in_;
  const native::NativePlan::Packer& packer_;
  native::HeldTensor* out_;
};

// A layer with k-bit weights and activations: activations quantized to u8 (or read as another
// native kernel left them), then the integer kernel (VNNI, or AMX tiles); weights packed, pad
// pixel, indirection and the kernel's scratch prepared at plan time.
class IntegerKernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx, const LayerIo& io) {
    auto k = std::unique_ptr<IntegerKernel>(new IntegerKernel(MakeIntegerLayer(ctx)));
    const kernels::Conv2dParams& p = k->layer_.p;
    const int taps = p.kernel_h * p.kernel_w;
    // Weights of 4 bits or fewer are kept as nibbles: half the memory, unpacked on the fly.
    k->nibbles_ = graph::Bits(QuantizationOf(*ctx.node)->weight_precision) <= 4;
    k->packed_w_ = MakeAligned<int8_t>(k->nibbles_ ? kernels::Int4ConvPackedWeightsBytes(p)
                                                   : kernels::Int8ConvPackedWeightsBytes(p));
    k->pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    if (io.in != nullptr) {
      k->in_bytes_ = static_cast<const uint8_t*>(io.in->data());
    } else {
      k->quantized_ = MakeAligned<uint8_t>(static_cast<size_t>(k->pixels_) * p.groups *
                                           kernels::Int8Channels(p.in_c / p.groups));
      if (!k->quantized_) return Error("out of memory packing an integer layer");
      k->in_bytes_ = k->quantized_.get();
    }
    if (!k->packed_w_) return Error("out of memory packing an integer layer");
    if (k->nibbles_) {
      kernels::PackInt4ConvWeights(p, k->layer_.weights.data(),
                                   reinterpret_cast<uint8_t*>(k->packed_w_.get()));
    } else {
      kernels::PackInt8ConvWeights(p, k->layer_.weights.data(), k->packed_w_.get());
    }
    k->zero_.resize(p.out_c);
    kernels::Int8ConvWeightSums(p, k->layer_.weights.data(), k->zero_.data());
    for (int32_t& z : k->zero_) z *= k->layer_.act.input_zero();
    k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
    kernels::Int8ConvIndirection(p, k->offsets_.data());
    k->out_ = OutputOf(ctx, io, p.out_c, k->layer_.mul.data(), IntegerSumBound(p), &k->storage_);
    k->in_ = ctx.inputs[0];
    k->pool_ = ctx.pool;
    k->split_ = kernels::SplitInt8ConvRows(p, ctx.pool->threads());
    if (k->split_.scratch_bytes > 0) {
      k->scratch_ = MakeAligned<uint8_t>(k->split_.scratch_bytes * k->split_.calls);
      if (!k->scratch_) return Error("out of memory planning an integer layer's scratch");
    }
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    const kernels::Conv2dParams& p = layer_.p;
    if (quantized_)
      kernels::QuantizeU8(pixels_, p.in_c, p.groups, layer_.act, in_, quantized_.get());
    auto rows = [&](size_t begin, size_t end) {
      const int b = static_cast<int>(begin), e = static_cast<int>(end);
      uint8_t* scratch =
          scratch_ ? scratch_.get() + begin / split_.rows_per_call * split_.scratch_bytes : nullptr;
      if (nibbles_) {
        kernels::Int4Conv2d(p, in_bytes_, layer_.pad_pixel.data(),
                            reinterpret_cast<const uint8_t*>(packed_w_.get()), zero_.data(),
                            offsets_.data(), out_, b, e, scratch);
      } else {
        kernels::Int8Conv2d(p, in_bytes_, layer_.pad_pixel.data(), packed_w_.get(), zero_.data(),
                            offsets_.data(), out_, b, e, scratch);
      }
    };
    pool_->ParallelFor(static_cast<size_t>(p.batch) * p.out_h, split_.rows_per_call, rows);
    return Status::Ok();
  }

 private:
  explicit IntegerKernel(IntegerLayer layer) : layer_(std::move(layer)) {}
  IntegerLayer layer_;
  bool nibbles_ = false;
  AlignedArray<int8_t> packed_w_;
  AlignedArray<uint8_t> quantized_;
  const uint8_t* in_bytes_ = nullptr;
  std::vector<int32_t> zero_;
  std::vector<int64_t> offsets_;
  native::TransformStorage storage_;
  kernels::ConvOutput out_;
  int64_t pixels_ = 0;
  const float* in_ = nullptr;
  ThreadPool* pool_ = nullptr;
  kernels::Int8ConvRowSplit split_;  // rows per call, scratch per call
  AlignedArray<uint8_t> scratch_;
};

// A 2-bit layer (int2 weights and activations): bit planes and popcounts instead of bytes, or,
// where kernels::Bit2LutPreferred says it is faster, the planes turned into codes of three
// channels and the table-lookup kernel (kernels/bit2_lut.h). The choice is made at plan time.
class Bit2Kernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const NodeContext& ctx, const LayerIo& io) {
    auto k = std::unique_ptr<Bit2Kernel>(new Bit2Kernel(MakeIntegerLayer(ctx)));
    const kernels::Conv2dParams& p = k->layer_.p;
    const int taps = p.kernel_h * p.kernel_w;
    const int cg = p.in_c / p.groups;
    k->pixel_words_ = static_cast<size_t>(p.groups) * kernels::PackedWords(cg) * 2;
    k->pixels_ = static_cast<int64_t>(p.batch) * p.in_h * p.in_w;
    k->lookup_ = kernels::Bit2LutPreferred(p);
    if (io.in != nullptr) {
      k->in_words_ = static_cast<const uint64_t*>(io.in->data());
    } else {
      k->planes_ = MakeAligned<uint64_t>(static_cast<size_t>(k->pixels_) * k->pixel_words_);
      if (!k->planes_) return Error("out of memory packing a 2-bit layer");
      k->in_words_ = k->planes_.get();
    }
    k->pad_.resize(k->pixel_words_);
    kernels::Bit2PadPixel(p, k->layer_.act, k->pad_.data());
    k->offsets_.resize(static_cast<size_t>(p.out_h) * p.out_w * taps);
    if (k->lookup_) {
      k->pixel_codes_ = static_cast<size_t>(p.groups) * kernels::Bit2Triples(cg);
      k->codes_ = MakeAligned<uint16_t>(static_cast<size_t>(k->pixels_) * k->pixel_codes_);
      k->lut_w_ = MakeAligned<uint8_t>(kernels::Bit2LutPackedWeightsBytes(p));
      if (!k->codes_ || !k->lut_w_) return Error("out of memory packing a 2-bit layer");
      kernels::PackBit2LutWeights(p, k->layer_.weights.data(), k->lut_w_.get());
      k->pad_codes_.resize(k->pixel_codes_);
      kernels::Bit2LutCodes(1, p.in_c, p.groups, k->pad_.data(), k->pad_codes_.data());
      kernels::ConvIndirection(p, static_cast<int64_t>(k->pixel_codes_), k->offsets_.data());
    } else {
      k->packed_w_ = MakeAligned<uint64_t>(kernels::Bit2ConvPackedWeightsWords(p));
      if (!k->packed_w_) return Error("out of memory packing a 2-bit layer");
      kernels::PackBit2ConvWeights(p, k->layer_.weights.data(), k->packed_w_.get());
      kernels::BinaryConvIndirection(p, k->offsets_.data());
    }
    k->zero_.resize(p.out_c);
    kernels::Int8ConvWeightSums(p, k->layer_.weights.data(), k->zero_.data());
    const int u_zero = k->layer_.act.zero_point - k->layer_.act.qmin;
    for (int32_t& z : k->zero_) z *= u_zero;
    k->out_ = OutputOf(ctx, io, p.out_c, k->layer_.mul.data(), IntegerSumBound(p), &k->storage_);
    k->in_ = ctx.inputs[0];
    k->pool_ = ctx.pool;
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run() override {
    const kernels::Conv2dParams& p = layer_.p;
    if (planes_) {
      kernels::QuantizeBitplanes2(pixels_, p.in_c, p.groups, layer_.act, in_, planes_.get());
    }
    if (lookup_) {
      auto pixels = [&](size_t begin, size_t end) {
        kernels::Bit2LutCodes(static_cast<int64_t>(end - begin), p.in_c, p.groups,
                              in_words_ + begin * pixel_words_,
                              codes_.get() + begin * pixel_codes_);
      };
      pool_->ParallelFor(static_cast<size_t>(pixels_), 64, pixels);
    }
    auto rows = [&](size_t begin, size_t end) {
      const int b = static_cast<int>(begin), e = static_cast<int>(end);
      if (lookup_) {
        kernels::Bit2LutConv2d(p, codes_.get(), pad_codes_.data(), lut_w_.get(), zero_.data(),
                               offsets_.data(), out_, b, e);
      } else {
        kernels::Bit2Conv2d(p, in_words_, pad_.data(), packed_w_.get(), zero_.data(),
                            offsets_.data(), out_, b, e);
      }
    };
    pool_->ParallelFor(static_cast<size_t>(p.batch) * p.out_h, 1, rows);
    return Status::Ok();
  }

 private:
  explicit Bit2Kernel(IntegerLayer layer) : layer_(std::move(layer)) {}
  IntegerLayer layer_;
  bool lookup_ = false;
  AlignedArray<uint64_t> packed_w_, planes_;
  AlignedArray<uint8_t> lut_w_;
  AlignedArray<uint16_t> codes_;
  const uint64_t* in_words_ = nullptr;
  size_t pixel_words_ = 0, pixel_codes_ = 0;
  std::vector<uint64_t> pad_;
  std::vector<uint16_t> pad_codes_;
  std::vector<int32_t> zero_;
  std::vector<int64_t> offsets_;
  native::TransformStorage storage_;
  kernels::ConvOutput out_;
  int64_t pixels_ = 0;
  const float* in_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

class NativeBackend : public Backend {
 public:
  explicit NativeBackend(std::unique_ptr<Backend> float_backend)
      : float_(std::move(float_backend)) {}

  std::string_view name() const override { return "native"; }

  std::string_view NameFor(const graph::Node& node) const override {
    return Own(node) || PackerOf(node) != nullptr ? name() : float_->NameFor(node);
  }

  FusionPlan Fuse(const PlanScope& scope) override {
    const graph::Graph& g = *scope.graph;
    graph_ = &g;
    auto input_of = [&](const graph::Node& n) {
      if (!Own(n) || !Supports(g, n).ok()) return native::LayerInput::kNone;
      const graph::Quantization& q = *QuantizationOf(n);
      if (IsBit2(q)) return native::LayerInput::kPlanes2;
      return IsIntegerLayer(q) ? native::LayerInput::kU8 : native::LayerInput::kBits;
    };
    plan_ = native::PlanNativeFusion(scope, input_of);
    return plan_.fusion;
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
    const graph::Node& node = *ctx.node;
    if (const native::NativePlan::Packer* packer = PackerOf(node)) {
      return std::unique_ptr<Kernel>(
          std::make_unique<PackKernel>(ctx.inputs[0], *packer, &plan_.held.at(packer->held)));
    }
    if (!Own(node)) return float_->Plan(ctx);
    HYBRID_RETURN_IF_ERROR(Supports(*ctx.graph, node));
    LayerIo io;
    if (auto it = plan_.held.find(node.inputs[0]); it != plan_.held.end()) io.in = &it->second;
    if (auto it = plan_.producers.find(IndexOf(node)); it != plan_.producers.end()) {
      io.producer = &it->second;
      io.out = &plan_.held.at(io.producer->held);
    }
    const graph::Quantization& q = *QuantizationOf(node);
    if (IsBit2(q)) return Bit2Kernel::Create(ctx, io);
    if (IsIntegerLayer(q)) return IntegerKernel::Create(ctx, io);
    return BinaryConvKernel::Create(ctx, io);
  }

 private:
  static bool Own(const graph::Node& node) {
    const graph::Quantization* q = QuantizationOf(node);
    return q != nullptr && !q->IsFloat();
  }
  // A 2-bit layer on bit planes; on AMX it runs as an integer layer (kernels::Bit2OnIntegerKernel).
  static bool IsBit2(const graph::Quantization& q) {
    return q.weight_precision == Precision::kInt2 && q.activation_precision == Precision::kInt2 &&
           !kernels::Bit2OnIntegerKernel();
  }

  // The node's index in the graph the fusion plan was made for, or -1.
  int IndexOf(const graph::Node& node) const {
    if (graph_ == nullptr || graph_->nodes.empty()) return -1;
    const ptrdiff_t i = &node - graph_->nodes.data();
    return i >= 0 && i < static_cast<ptrdiff_t>(graph_->nodes.size()) ? static_cast<int>(i) : -1;
  }

  const native::NativePlan::Packer* PackerOf(const graph::Node& node) const {
    auto it = plan_.packers.find(IndexOf(node));
    return it == plan_.packers.end() ? nullptr : &it->second;
  }

  std::unique_ptr<Backend> float_;
  const graph::Graph* graph_ = nullptr;
  native::NativePlan plan_;
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
