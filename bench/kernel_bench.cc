// Convolution kernels on the same layers: our binary, 2-bit, 4-bit and 8-bit kernels against
// oneDNN (f32 and int8) and XNNPACK (f32). Benchmarks are named conv/<impl>/<shape> and report
// `gmacs`; after the runs the program prints each impl's ratio to onednn_f32 and onednn_int8 per
// shape, and a roofline line: each binary layer against our microkernel's ceiling
// (ceiling/binary), measured in the same run.
//
// Extra flags (before Google Benchmark's own): --threads N (default 1), --target NAME to force
// the kernels' SIMD target (avx2, avx3, avx3_dl, ...).
#include <benchmark/benchmark.h>
#include <xnnpack.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/thread_pool.h"
#include "kernels/binary.h"
#include "kernels/bit2_lut.h"
#include "kernels/dispatch.h"
#include "kernels/int8.h"

extern "C" void omp_set_num_threads(int);

namespace hybrid {
namespace {

int g_threads = 1;

// Weights and activations 64-byte aligned, as the native backend holds them
// (engine/backend_native.cc): from a 16-byte-aligned heap block every 64-byte load would span two
// cache lines.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  explicit Aligned64(const Aligned64<U>& /*other*/) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t /*n*/) { std::free(p); }
  template <class U>
  bool operator==(const Aligned64<U>& /*other*/) const {
    return true;
  }
};
template <class T>
using AlignedVector = std::vector<T, Aligned64<T>>;

struct Shape {
  const char* name;
  int kernel, channels, height, stride;
  kernels::Conv2dParams Params() const {
    kernels::Conv2dParams p;
    p.in_h = p.in_w = height;
    p.in_c = p.out_c = channels;
    p.kernel_h = p.kernel_w = kernel;
    p.stride_h = p.stride_w = stride;
    p.pad_top = p.pad_left = kernel / 2;
    p.out_h = (height + 2 * (kernel / 2) - kernel) / stride + 1;
    p.out_w = p.out_h;
    p.pad_value = 1.f;
    return p;
  }
  double Macs() const {
    kernels::Conv2dParams p = Params();
    return double{1} * p.out_h * p.out_w * p.out_c * p.kernel_h * p.kernel_w * p.in_c;
  }
};

const Shape kShapes[] = {
    {"3x3_c64_h56", 3, 64, 56, 1},   {"3x3_c128_h28", 3, 128, 28, 1},
    {"3x3_c256_h14", 3, 256, 14, 1}, {"3x3_c512_h7", 3, 512, 7, 1},
    {"1x1_c256_h14", 1, 256, 14, 1}, {"3x3s2_c128_h28", 3, 128, 28, 2},
};

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void Report(benchmark::State& state, const Shape& s) {
  state.counters["gmacs"] =
      benchmark::Counter(s.Macs() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// A layer inside a network of its kind reads its input in the form the layer before wrote it and
// writes its output in the form the layer after reads: bits for binary layers, u8 for integer
// layers, two bit planes for 2-bit layers, as oneDNN's int8 convolution reads u8 and writes s8.
// Output thresholds and quantization are set so that outputs vary.

// A binary layer. `from_float`: the layer at the border of a binary block instead, from float
// input (bitpacked in the loop) to float output through its transform. `tiles`: on the AMX
// tiles (kernels::BinaryConv2dOnTiles), as the engine runs the layers kernels::BinaryConvOnTiles
// accepts; otherwise XOR-popcount.
void BM_Binary(benchmark::State& state, const Shape& s, bool from_float, bool tiles) {
  kernels::Conv2dParams p = s.Params();
  auto x = Random(static_cast<size_t>(p.in_h) * p.in_w * p.in_c, 1);
  auto w = Random(static_cast<size_t>(p.out_c) * p.kernel_h * p.kernel_w * p.in_c, 2);
  std::vector<float> mul(p.out_c, 0.01f), out(static_cast<size_t>(p.out_h) * p.out_w * p.out_c);
  AlignedVector<uint64_t> packed_x(static_cast<size_t>(p.in_h) * p.in_w *
                                   kernels::PackedWords(p.in_c));
  AlignedVector<uint64_t> packed_w(kernels::BinaryConvPackedWeightsWords(p));
  kernels::PackBinaryConvWeights(p, w.data(), packed_w.data());
  std::vector<int32_t> sums(static_cast<size_t>(p.out_c) * p.kernel_h * p.kernel_w);
  kernels::BinaryConvTapSums(p, w.data(), sums.data());
  std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * p.kernel_h * p.kernel_w);
  kernels::BinaryConvIndirection(p, offsets.data());
  std::vector<int32_t> threshold(p.out_c);
  std::mt19937 rng(4);
  for (int32_t& t : threshold) t = static_cast<int32_t>(rng() % 17) - 8;
  AlignedVector<uint64_t> out_bits(static_cast<size_t>(p.out_h) * p.out_w *
                                   kernels::PackedWords(p.out_c));
  kernels::ConvOutput o;
  if (from_float) {
    o.transform.mul = mul.data();
    o.data = out.data();
  } else {
    o.kind = kernels::OutputKind::kBits;
    o.threshold = threshold.data();
    o.data = out_bits.data();
  }
  kernels::BitpackF32(static_cast<int64_t>(p.in_h) * p.in_w, p.in_c, 1, nullptr, nullptr, x.data(),
                      packed_x.data());
  // The tiles' form of the layer: the signs as s8, their sums, the pad pixel, scratch per call.
  AlignedVector<int8_t> packed_s8(tiles ? kernels::Int8ConvPackedWeightsBytes(p) : 0);
  std::vector<int32_t> zero(p.out_c);
  std::vector<uint8_t> pad(kernels::Int8Channels(p.in_c));
  const kernels::Int8ConvRowSplit split = kernels::SplitInt8ConvRows(p, g_threads);
  AlignedVector<uint8_t> scratch(tiles ? split.scratch_bytes * split.calls : 0);
  if (tiles) {
    kernels::PackBinaryOnTilesWeights(p, w.data(), packed_s8.data(), zero.data());
    kernels::BinaryOnTilesPadPixel(p, pad.data());
  }
  engine::ThreadPool pool(g_threads);
  auto rows = [&](size_t begin, size_t end) {
    if (tiles) {
      kernels::BinaryConv2dOnTiles(
          p, packed_x.data(), pad.data(), packed_s8.data(), zero.data(), o, static_cast<int>(begin),
          static_cast<int>(end),
          scratch.data() + begin / split.rows_per_call * split.scratch_bytes);
      return;
    }
    kernels::BinaryConv2d(p, packed_x.data(), packed_w.data(), sums.data(), offsets.data(), o,
                          static_cast<int>(begin), static_cast<int>(end));
  };
  const size_t rows_per_call = tiles ? split.rows_per_call : 1;
  for (auto _ : state) {
    if (from_float) {
      kernels::BitpackF32(static_cast<int64_t>(p.in_h) * p.in_w, p.in_c, 1, nullptr, nullptr,
                          x.data(), packed_x.data());
    }
    pool.ParallelFor(static_cast<size_t>(p.out_h), rows_per_call, rows);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(out_bits.data());
  }
  Report(state, s);
}

// Quantization of signed activations in [-1, 1] to `bits` bits.
kernels::ActivationQuant SignedQuant(int bits) {
  const int top = (1 << (bits - 1)) - 1;
  return kernels::ActivationQuant{1.f / static_cast<float>(top), 0, -top - 1, top, 128};
}

// An integer layer of `bits`-bit weights and activations, u8 in, u8 out: Int8Conv2d (VPDPBUSD or
// AMX where the CPU has it), with 4 bits or fewer the weights stored two per byte and Int4Conv2d,
// as the native backend stores them.
void BM_Int8(benchmark::State& state, const Shape& s, int bits) {
  const bool nibbles = bits <= 4;
  kernels::Conv2dParams p = s.Params();
  p.pad_value = 0.f;
  auto x = Random(static_cast<size_t>(p.in_h) * p.in_w * p.in_c, 1);
  const int taps = p.kernel_h * p.kernel_w;
  std::vector<int8_t> w(static_cast<size_t>(p.out_c) * taps * p.in_c);
  std::mt19937 rng(3);
  const int top = (1 << (bits - 1)) - 1;
  for (int8_t& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % (2 * top + 1)) - top);
  const kernels::ActivationQuant q = SignedQuant(bits);
  AlignedVector<uint8_t> qx(static_cast<size_t>(p.in_h) * p.in_w * kernels::Int8Channels(p.in_c));
  kernels::QuantizeU8(static_cast<int64_t>(p.in_h) * p.in_w, p.in_c, 1, q, x.data(), qx.data());
  std::vector<uint8_t> pad(kernels::Int8Channels(p.in_c), kernels::QuantizeOneU8(q, 0.f));
  AlignedVector<int8_t> packed(kernels::Int8ConvPackedWeightsBytes(p));
  AlignedVector<uint8_t> nibble_packed(kernels::Int4ConvPackedWeightsBytes(p));
  kernels::PackInt8ConvWeights(p, w.data(), packed.data());
  kernels::PackInt4ConvWeights(p, w.data(), nibble_packed.data());
  std::vector<int32_t> zero(p.out_c);
  kernels::Int8ConvWeightSums(p, w.data(), zero.data());
  for (int32_t& v : zero) v *= q.input_zero();
  std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
  kernels::Int8ConvIndirection(p, offsets.data());
  std::vector<float> mul(p.out_c, 1e-4f);
  AlignedVector<uint8_t> out(static_cast<size_t>(p.out_h) * p.out_w *
                             kernels::Int8Channels(p.out_c));
  kernels::ConvOutput o;
  o.kind = kernels::OutputKind::kU8;
  o.transform.mul = mul.data();
  o.quant = q;
  o.data = out.data();
  engine::ThreadPool pool(g_threads);
  // Rows split among calls as the native backend splits them.
  const kernels::Int8ConvRowSplit split = kernels::SplitInt8ConvRows(p, g_threads);
  AlignedVector<uint8_t> scratch(split.scratch_bytes * split.calls);
  auto rows = [&](size_t begin, size_t end) {
    uint8_t* room = split.scratch_bytes > 0
                        ? scratch.data() + begin / split.rows_per_call * split.scratch_bytes
                        : nullptr;
    if (nibbles) {
      kernels::Int4Conv2d(p, qx.data(), pad.data(), nibble_packed.data(), zero.data(),
                          offsets.data(), o, static_cast<int>(begin), static_cast<int>(end), room);
    } else {
      kernels::Int8Conv2d(p, qx.data(), pad.data(), packed.data(), zero.data(), offsets.data(), o,
                          static_cast<int>(begin), static_cast<int>(end), room);
    }
  };
  for (auto _ : state) {
    pool.ParallelFor(static_cast<size_t>(p.out_h), split.rows_per_call, rows);
    benchmark::DoNotOptimize(out.data());
  }
  Report(state, s);
}

// A 2-bit layer, two bit planes in, two bit planes out: the bit-serial Bit2Conv2d, or with
// `lookup` the planes converted to codes (timed: a 2-bit layer's input arrives as planes) and the
// table-lookup Bit2LutConv2d.
void BM_Bit2(benchmark::State& state, const Shape& s, bool lookup) {
  kernels::Conv2dParams p = s.Params();
  p.pad_value = 0.f;
  auto x = Random(static_cast<size_t>(p.in_h) * p.in_w * p.in_c, 1);
  const int taps = p.kernel_h * p.kernel_w;
  std::vector<int8_t> w(static_cast<size_t>(p.out_c) * taps * p.in_c);
  std::mt19937 rng(3);
  for (int8_t& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  const kernels::ActivationQuant q = SignedQuant(2);
  const int64_t in_pixels = static_cast<int64_t>(p.in_h) * p.in_w;
  const size_t pixel_words = static_cast<size_t>(kernels::PackedWords(p.in_c)) * 2;
  AlignedVector<uint64_t> planes(in_pixels * pixel_words);
  kernels::QuantizeBitplanes2(in_pixels, p.in_c, 1, q, x.data(), planes.data());
  std::vector<uint64_t> pad(pixel_words);
  kernels::Bit2PadPixel(p, q, pad.data());
  std::vector<int32_t> zero(p.out_c);
  kernels::Int8ConvWeightSums(p, w.data(), zero.data());
  for (int32_t& v : zero) v *= q.zero_point - q.qmin;
  std::vector<float> mul(p.out_c, 0.05f);
  AlignedVector<uint64_t> out(static_cast<size_t>(p.out_h) * p.out_w *
                              kernels::PackedWords(p.out_c) * 2);
  kernels::ConvOutput o;
  o.kind = kernels::OutputKind::kPlanes2;
  o.transform.mul = mul.data();
  o.quant = q;
  o.data = out.data();
  // As the native backend writes 2-bit planes: through thresholds on the sums (|w| <= 1, and
  // activations less their zero point within 3).
  std::vector<int32_t> plane_threshold(4 * static_cast<size_t>(p.out_c));
  if (!kernels::Planes2Thresholds(o.transform, q, p.out_c, 3 * taps * p.in_c,
                                  plane_threshold.data())) {
    std::fprintf(stderr, "kernel_bench: no 2-bit output thresholds for this transform\n");
    std::exit(1);
  }
  o.threshold = plane_threshold.data();
  engine::ThreadPool pool(g_threads);
  std::vector<int64_t> offsets(static_cast<size_t>(p.out_h) * p.out_w * taps);
  if (lookup) {
    const int triples = kernels::Bit2Triples(p.in_c);
    AlignedVector<uint16_t> codes(in_pixels * triples), pad_codes(triples);
    kernels::Bit2LutCodes(1, p.in_c, 1, pad.data(), pad_codes.data());
    AlignedVector<uint8_t> packed(kernels::Bit2LutPackedWeightsBytes(p));
    kernels::PackBit2LutWeights(p, w.data(), packed.data());
    kernels::ConvIndirection(p, triples, offsets.data());
    auto pixels = [&](size_t begin, size_t end) {
      kernels::Bit2LutCodes(static_cast<int64_t>(end - begin), p.in_c, 1,
                            planes.data() + begin * pixel_words, codes.data() + begin * triples);
    };
    auto rows = [&](size_t begin, size_t end) {
      kernels::Bit2LutConv2d(p, codes.data(), pad_codes.data(), packed.data(), zero.data(),
                             offsets.data(), o, static_cast<int>(begin), static_cast<int>(end));
    };
    for (auto _ : state) {
      pool.ParallelFor(static_cast<size_t>(in_pixels), 64, pixels);
      pool.ParallelFor(static_cast<size_t>(p.out_h), 1, rows);
      benchmark::DoNotOptimize(out.data());
    }
  } else {
    AlignedVector<uint64_t> packed(kernels::Bit2ConvPackedWeightsWords(p));
    kernels::PackBit2ConvWeights(p, w.data(), packed.data());
    kernels::BinaryConvIndirection(p, offsets.data());
    auto rows = [&](size_t begin, size_t end) {
      kernels::Bit2Conv2d(p, planes.data(), pad.data(), packed.data(), zero.data(), offsets.data(),
                          o, static_cast<int>(begin), static_cast<int>(end));
    };
    for (auto _ : state) {
      pool.ParallelFor(static_cast<size_t>(p.out_h), 1, rows);
      benchmark::DoNotOptimize(out.data());
    }
  }
  Report(state, s);
}

void BM_OneDnn(benchmark::State& state, const Shape& s, bool int8) {
  using dnnl::memory;
  using Tag = memory::format_tag;
  omp_set_num_threads(g_threads);
  kernels::Conv2dParams p = s.Params();
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const memory::data_type src_t = int8 ? memory::data_type::u8 : memory::data_type::f32;
  const memory::data_type wei_t = int8 ? memory::data_type::s8 : memory::data_type::f32;
  const memory::data_type dst_t = int8 ? memory::data_type::s8 : memory::data_type::f32;
  memory::desc src({1, p.in_c, p.in_h, p.in_w}, src_t, Tag::nhwc);
  memory::desc dst({1, p.out_c, p.out_h, p.out_w}, dst_t, Tag::nhwc);
  memory::desc wei_any({p.out_c, p.in_c, p.kernel_h, p.kernel_w}, wei_t, Tag::any);
  memory::desc wei_user({p.out_c, p.in_c, p.kernel_h, p.kernel_w}, wei_t, Tag::ohwi);
  dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wei_any, dst,
      {p.stride_h, p.stride_w}, {p.pad_top, p.pad_left}, {p.pad_top, p.pad_left});
  dnnl::primitive_attr attr;
  if (int8) attr.set_output_scales(0, {0.01f});
  dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);
  memory src_m(src, eng), dst_m(dst, eng), wei_u(wei_user, eng), wei_m(pd.weights_desc(), eng);
  std::memset(src_m.get_data_handle(), 1, src.get_size());
  std::memset(wei_u.get_data_handle(), 1, wei_user.get_size());
  dnnl::reorder(wei_u, wei_m).execute(strm, wei_u, wei_m);
  dnnl::convolution_forward conv(pd);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst_m}};
  for (auto _ : state) {
    conv.execute(strm, args);
    strm.wait();
  }
  state.SetLabel(pd.impl_info_str());
  Report(state, s);
}

void BM_Xnnpack(benchmark::State& state, const Shape& s) {
  kernels::Conv2dParams p = s.Params();
  if (xnn_initialize(nullptr) != xnn_status_success) {
    state.SkipWithError("xnn_initialize failed");
    return;
  }
  auto x = Random(static_cast<size_t>(p.in_h) * p.in_w * p.in_c, 1);
  auto w = Random(static_cast<size_t>(p.out_c) * p.kernel_h * p.kernel_w * p.in_c, 2);
  std::vector<float> out(static_cast<size_t>(p.out_h) * p.out_w * p.out_c);
  engine::ThreadPool pool(g_threads);
  xnn_operator_t op = nullptr;
  const float inf = INFINITY;
  if (xnn_create_convolution2d_nhwc_f32(p.pad_top, p.pad_left, p.pad_top, p.pad_left, p.kernel_h,
                                        p.kernel_w, p.stride_h, p.stride_w, 1, 1, 1, p.in_c,
                                        p.out_c, p.in_c, p.out_c, w.data(), nullptr, -inf, inf, 0,
                                        &op) != xnn_status_success ||
      xnn_setup_convolution2d_nhwc_f32(op, 1, p.in_h, p.in_w, x.data(), out.data(), pool.get()) !=
          xnn_status_success) {
    state.SkipWithError("XNNPACK convolution setup failed");
    return;
  }
  for (auto _ : state) xnn_run_operator(op, pool.get());
  xnn_delete_operator(op);
  Report(state, s);
}

// The ceiling of our binary microkernel: a 3x3 convolution with 512 channels (8 words per tap,
// the unrolled inner loop) of 4 rows of 8 pixels against 3 blocks of 16 channels, with no
// padding: 72 words per output, weights (28 KB) and input (4 KB) in L1, each tile's setup shared
// by 3 blocks as in the layers, so that little but the XOR-popcount-add loop counts: what the
// layers could reach with no padding and no indirection or output cost. (The 5x5 kernel with one
// block it replaced, 2026-12-03, measured 6% lower on Zen 2, below the 3x3_c512 layer.)
void BM_BinaryCeiling(benchmark::State& state) {
  kernels::Conv2dParams p;
  p.in_c = 512;
  p.out_c = 48;
  p.kernel_h = p.kernel_w = 3;
  p.out_h = 4;
  p.out_w = 8;
  p.in_h = p.out_h + 2;
  p.in_w = p.out_w + 2;
  const int taps = p.kernel_h * p.kernel_w;
  const int pixels = p.out_h * p.out_w;
  std::mt19937_64 rng(1);
  AlignedVector<uint64_t> in(static_cast<size_t>(p.in_h) * p.in_w * kernels::PackedWords(p.in_c));
  const auto w = Random(static_cast<size_t>(p.out_c) * taps * p.in_c, 2);
  AlignedVector<uint64_t> packed(kernels::BinaryConvPackedWeightsWords(p));
  kernels::PackBinaryConvWeights(p, w.data(), packed.data());
  for (auto& v : in) v = rng();
  std::vector<int32_t> sums(static_cast<size_t>(p.out_c) * taps), threshold(p.out_c, 0);
  std::vector<int64_t> offsets(static_cast<size_t>(pixels) * taps);
  kernels::BinaryConvIndirection(p, offsets.data());
  AlignedVector<uint64_t> out(static_cast<size_t>(pixels) * kernels::PackedWords(p.out_c));
  kernels::ConvOutput o;
  o.kind = kernels::OutputKind::kBits;
  o.threshold = threshold.data();
  o.data = out.data();
  for (auto _ : state) {
    kernels::BinaryConv2d(p, in.data(), packed.data(), sums.data(), offsets.data(), o, 0, p.out_h);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["gmacs"] = benchmark::Counter(1e-9 * pixels * p.out_c * taps * p.in_c,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      auto it = r.counters.find("gmacs");
      if (it != r.counters.end()) gmacs_[r.run_name.function_name] = it->second.value;
    }
  }
  std::map<std::string, double> gmacs_;
};

}  // namespace
}  // namespace hybrid

int main(int argc, char** argv) {
  using namespace hybrid;
  std::vector<char*> args = {argv[0]};
  std::string target;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      g_threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--target" && i + 1 < argc) {
      target = argv[++i];
    } else {
      args.push_back(argv[i]);
    }
  }
  if (!target.empty()) {
    kernels::Target t;
    if (!kernels::FindTarget(target, &t)) {
      std::fprintf(stderr, "error: target '%s' is not supported here; supported:", target.c_str());
      for (const auto& s : kernels::SupportedTargets()) std::fprintf(stderr, " %s", s.name.c_str());
      std::fprintf(stderr, "\n");
      return 1;
    }
    kernels::ForceTarget(t.bits);
  }
  // Repetitions interleaved in random order, so that a slow spell of this shared machine lands
  // on every impl alike rather than on one; medians of them.
  std::string reps = "--benchmark_repetitions=7";
  std::string agg = "--benchmark_report_aggregates_only=true";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string min_time = "--benchmark_min_time=0.2";
  auto given = [&](const char* flag) {
    for (size_t i = 1; i < args.size(); ++i) {
      if (std::string(args[i]).rfind(flag, 0) == 0) return true;
    }
    return false;
  };
  if (!given("--benchmark_repetitions")) {
    args.push_back(reps.data());
    args.push_back(agg.data());
  }
  if (!given("--benchmark_enable_random_interleaving")) args.push_back(interleave.data());
  if (!given("--benchmark_min_time")) args.push_back(min_time.data());
  for (const Shape& s : kShapes) {
    std::string shape = s.name;
    // binary: the kernel the engine picks for this layer; on AMX the XOR-popcount one besides.
    const bool tiles = kernels::BinaryConvOnTiles(s.Params());
    benchmark::RegisterBenchmark(("conv/binary/" + shape).c_str(), BM_Binary, s, false, tiles)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("conv/binary_f32io/" + shape).c_str(), BM_Binary, s, true, tiles)
        ->UseRealTime();
    if (tiles) {
      benchmark::RegisterBenchmark(("conv/binary_popcount/" + shape).c_str(), BM_Binary, s, false,
                                   false)
          ->UseRealTime();
    }
    // bit2: the kernel the engine picks for this layer; the two kernels apart besides.
    if (kernels::Bit2OnIntegerKernel()) {
      benchmark::RegisterBenchmark(("conv/bit2/" + shape).c_str(), BM_Int8, s, 2)->UseRealTime();
    } else {
      benchmark::RegisterBenchmark(("conv/bit2/" + shape).c_str(), BM_Bit2, s,
                                   kernels::Bit2LutPreferred(s.Params()))
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("conv/bit2_serial/" + shape).c_str(), BM_Bit2, s, false)
        ->UseRealTime();
    // Elsewhere than AVX3_DL (with or without AMX) the lookup runs portable code, no contender.
    if (kernels::CurrentTarget() == "avx3_dl" || kernels::CurrentTarget() == "avx3_amx") {
      benchmark::RegisterBenchmark(("conv/bit2_lut/" + shape).c_str(), BM_Bit2, s, true)
          ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("conv/bit4/" + shape).c_str(), BM_Int8, s, 4)->UseRealTime();
    benchmark::RegisterBenchmark(("conv/int8/" + shape).c_str(), BM_Int8, s, 8)->UseRealTime();
    benchmark::RegisterBenchmark(("conv/onednn_f32/" + shape).c_str(), BM_OneDnn, s, false)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("conv/onednn_int8/" + shape).c_str(), BM_OneDnn, s, true)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("conv/xnnpack_f32/" + shape).c_str(), BM_Xnnpack, s)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("ceiling/binary", BM_BinaryCeiling)->UseRealTime();
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  MedianReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  const double hz = benchmark::CPUInfo::Get().cycles_per_second;
  std::printf(
      "\nkernels target %s, %d thread(s); medians; ratio = gmacs / gmacs of the reference\n",
      kernels::CurrentTarget().c_str(), g_threads);
  std::printf("%-16s %-12s %10s %12s %12s\n", "shape", "impl", "gmacs", "/onednn_f32",
              "/onednn_int8");
  for (const Shape& s : kShapes) {
    auto get = [&](const char* impl) {
      auto it = reporter.gmacs_.find(std::string("conv/") + impl + "/" + s.name);
      return it == reporter.gmacs_.end() ? NAN : it->second;
    };
    const double f32 = get("onednn_f32"), i8 = get("onednn_int8");
    for (const char* impl :
         {"binary", "binary_f32io", "binary_popcount", "bit2", "bit2_serial", "bit2_lut", "bit4",
          "int8", "onednn_f32", "onednn_int8", "xnnpack_f32"}) {
      const double g = get(impl);
      if (std::isnan(g)) continue;
      // A reference the filter left out shows as "-", not as a ratio to nothing.
      auto ratio = [g](double ref) {
        char text[32] = "-";
        if (!std::isnan(ref)) std::snprintf(text, sizeof text, "%.2fx", g / ref);
        return std::string(text);
      };
      std::printf("%-16s %-12s %10.1f %12s %12s\n", s.name, impl, g, ratio(f32).c_str(),
                  ratio(i8).c_str());
    }
  }
  // The ceiling's median in the same interleaved run, one thread.
  auto it = reporter.gmacs_.find("ceiling/binary");
  if (it != reporter.gmacs_.end()) {
    const double ceiling = it->second;
    std::printf(
        "\nroofline: binary microkernel ceiling %.1f GMAC/s per thread (%.0f binary MACs per "
        "cycle at the %.2f GHz the benchmark library reports)\n",
        ceiling, ceiling * 1e9 / hz, hz * 1e-9);
    // The XOR-popcount kernel's figure: binary_popcount where binary ran on the tiles.
    for (const Shape& s : kShapes) {
      auto b = reporter.gmacs_.find(std::string("conv/binary_popcount/") + s.name);
      if (b == reporter.gmacs_.end())
        b = reporter.gmacs_.find(std::string("conv/binary/") + s.name);
      if (b == reporter.gmacs_.end()) continue;
      std::printf("  %-16s %5.1f%% of the ceiling\n", s.name,
                  100 * b->second / g_threads / ceiling);
    }
  }
  return 0;
}
