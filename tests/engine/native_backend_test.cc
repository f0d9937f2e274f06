// The native backend on whole binary networks: with ref as its float backend it must give the ref
// backend's results bit for bit, on every SIMD target this machine supports.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <tuple>

#include "engine/executor.h"
#include "graph/builder.h"
#include "kernels/dispatch.h"
#include "tests/engine/alloc_counter.h"
#include "tests/kernels/target_printer.h"

namespace hybrid::engine {
namespace {

using graph::GraphBuilder;
using graph::OpType;
using graph::TensorId;

// A binary ResNet-style network: f32 stem, binary blocks (one- and zero-padded, stride 2,
// dilated, grouped, channel counts off multiples of 64) with BN, hardtanh and residual adds,
// a binary dense layer and an f32 classifier.
std::shared_ptr<const graph::Graph> BinaryNet(uint32_t seed, int width) {
  std::mt19937 rng(seed);
  auto values = [&](size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  GraphBuilder b("binary_net");
  int n = 0;
  auto name = [&](const char* s) { return s + std::to_string(n++); };
  auto conv = [&](TensorId x, int ci, int co, graph::Conv2dAttrs a, bool binary) {
    if (binary) {
      a.quant.weight_precision = a.quant.activation_precision = graph::Precision::kBinary;
    }
    std::string nm = name("conv");
    size_t count = static_cast<size_t>(co) * a.kernel_h * a.kernel_w * (ci / a.groups);
    return b.Conv2d(
        nm, x,
        b.Constant(nm + ".w", {co, a.kernel_h, a.kernel_w, ci / a.groups}, values(count, -1, 1)),
        b.Constant(nm + ".b", {co}, values(co, -1, 1)), a);
  };
  auto bn = [&](TensorId x, int c) {
    std::string nm = name("bn");
    return b.BatchNorm(nm, x, b.Constant(nm + ".g", {c}, values(c, 0.02f, 0.05f)),
                       b.Constant(nm + ".be", {c}, values(c, -0.2f, 0.2f)),
                       b.Constant(nm + ".m", {c}, values(c, -1, 1)),
                       b.Constant(nm + ".v", {c}, values(c, 0.5f, 2)));
  };
  auto three = [](int stride, int dilation, int groups, float pad_value) {
    graph::Conv2dAttrs a;
    a.kernel_h = a.kernel_w = 3;
    a.stride_h = a.stride_w = stride;
    a.dilation_h = a.dilation_w = dilation;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = dilation;
    a.groups = groups;
    a.pad_value = pad_value;
    return a;
  };
  TensorId x = b.Input("image", {11, 9, 3});
  TensorId h =
      b.Op(name("relu"), OpType::kRelu, {bn(conv(x, 3, width, three(1, 1, 1, 0), false), width)});
  // Block 1: one-padded; block 2: zero-padded and dilated; block 3: grouped.
  for (auto [dil, groups, pad] :
       {std::tuple{1, 1, 1.f}, {2, 1, 0.f}, {1, width % 2 == 0 ? 2 : 1, 1.f}}) {
    TensorId r = b.Hardtanh(
        name("ht"), bn(conv(h, width, width, three(1, dil, groups, pad), true), width), -1, 1);
    h = b.Op(name("add"), OpType::kAdd, {h, r});
  }
  // Stride-2 binary transition to 65 channels, zero-padded.
  h = bn(conv(h, width, 65, three(2, 1, 1, 0), true), 65);
  TensorId gap = b.Op(name("gap"), OpType::kGlobalAvgPool, {h});
  graph::DenseAttrs bd;
  bd.quant.weight_precision = bd.quant.activation_precision = graph::Precision::kBinary;
  TensorId d1 = b.Dense(name("bdense"), gap, b.Constant("bd.w", {30, 65}, values(30 * 65, -1, 1)),
                        b.Constant("bd.b", {30}, values(30, -1, 1)), bd);
  TensorId d2 = b.Dense(name("dense"), d1, b.Constant("d.w", {10, 30}, values(300, -1, 1)),
                        b.Constant("d.b", {10}, values(10, -1, 1)));
  b.Output("final", b.Op("softmax", OpType::kSoftmax, {d2}), graph::OutputKind::kFinal);
  auto g = std::move(b).Build();
  EXPECT_TRUE(g.ok()) << g.message();
  return std::make_shared<const graph::Graph>(std::move(g).value());
}

// Integer layers of every k-bit combination: weights int8/int4/int2 with activations
// int8 (signed), int4 (zero point 8) and int2, stride 2, groups, padding, an integer dense layer.
std::shared_ptr<const graph::Graph> IntegerNet(uint32_t seed, int width) {
  std::mt19937 rng(seed);
  auto values = [&](size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  GraphBuilder b("integer_net");
  int n = 0;
  auto quant = [](graph::Precision w, graph::Precision a) {
    graph::Quantization q;
    q.weight_precision = w;
    q.activation_precision = a;
    q.act_signed = a == graph::Precision::kInt8;
    q.act_scale = a == graph::Precision::kInt8   ? 0.02f
                  : a == graph::Precision::kInt4 ? 0.15f
                                                 : 0.5f;
    q.act_zero_point = a == graph::Precision::kInt4 ? 8 : a == graph::Precision::kInt2 ? 1 : 0;
    return q;
  };
  auto conv = [&](TensorId x, int ci, int co, int stride, int groups, graph::Quantization q) {
    graph::Conv2dAttrs a;
    a.kernel_h = a.kernel_w = 3;
    a.stride_h = a.stride_w = stride;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
    a.groups = groups;
    a.quant = q;
    std::string nm = "conv" + std::to_string(n++);
    size_t count = static_cast<size_t>(co) * 9 * (ci / groups);
    return b.Conv2d(nm, x, b.Constant(nm + ".w", {co, 3, 3, ci / groups}, values(count, -1, 1)),
                    b.Constant(nm + ".b", {co}, values(co, -1, 1)), a);
  };
  using P = graph::Precision;
  TensorId x = b.Input("image", {10, 7, 3});
  TensorId h = conv(x, 3, width, 1, 1, quant(P::kInt8, P::kInt8));
  h = b.Hardtanh("ht0", h, -2, 2);
  h = conv(h, width, width, 2, width % 2 == 0 ? 2 : 1, quant(P::kInt4, P::kInt4));
  h = b.Hardtanh("ht1", h, -1, 1);
  // 130 channels: the 2-bit table-lookup kernel where the target has it (two blocks of 64 and a
  // partial third).
  h = conv(h, width, 130, 1, 1, quant(P::kInt2, P::kInt2));
  h = conv(h, 130, 20, 1, 1, quant(P::kInt4, P::kInt8));
  TensorId gap = b.Op("gap", OpType::kGlobalAvgPool, {h});
  graph::DenseAttrs d;
  d.quant = quant(P::kInt8, P::kInt4);
  TensorId fc = b.Dense("fc", gap, b.Constant("fc.w", {10, 20}, values(200, -1, 1)),
                        b.Constant("fc.b", {10}, values(10, -1, 1)), d);
  b.Output("final", b.Op("softmax", OpType::kSoftmax, {fc}), graph::OutputKind::kFinal);
  auto g = std::move(b).Build();
  EXPECT_TRUE(g.ok()) << g.message();
  return std::make_shared<const graph::Graph>(std::move(g).value());
}

// A binary network built to be fused: pre-activation blocks (batchnorm and sign before each
// binary conv), binary convs feeding binary convs through batchnorm (negative and zero scales
// among them), hardtanh or nothing, a tensor read by two binary convs, grouped consumers, a prelu
// with negative slopes (which cannot become a threshold), float transforms absorbing batchnorm
// and prelu, integer and 2-bit layers with batchnorm and relu, and binary dense layers.
std::shared_ptr<const graph::Graph> FusableNet(uint32_t seed, int width) {
  std::mt19937 rng(seed);
  auto values = [&](size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  GraphBuilder b("fusable_net");
  int n = 0;
  auto name = [&](const char* s) { return s + std::to_string(n++); };
  auto quant = [](graph::Precision p) {
    graph::Quantization q;
    q.weight_precision = q.activation_precision = p;
    if (p == graph::Precision::kInt8 || p == graph::Precision::kInt2) {
      q.act_scale = p == graph::Precision::kInt8 ? 0.05f : 0.5f;
      q.act_signed = true;
    }
    return q;
  };
  auto conv = [&](TensorId x, int ci, int co, int k, int stride, int groups, float pad_value,
                  graph::Precision prec, int dilation = 1) {
    graph::Conv2dAttrs a;
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.dilation_h = a.dilation_w = dilation;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = k / 2 * dilation;
    a.groups = groups;
    a.pad_value = pad_value;
    a.quant = quant(prec);
    std::string nm = name("conv");
    size_t count = static_cast<size_t>(co) * k * k * (ci / groups);
    return b.Conv2d(nm, x, b.Constant(nm + ".w", {co, k, k, ci / groups}, values(count, -1, 1)),
                    b.Constant(nm + ".b", {co}, values(co, -1, 1)), a);
  };
  // gamma_lo < 0 gives some channels a negative scale, `zero` channel 1 a zero scale.
  auto bn = [&](TensorId x, int c, float gamma_lo = 0.02f, bool zero = false) {
    std::string nm = name("bn");
    auto gamma = values(c, gamma_lo, 0.05f);
    if (zero) gamma[1] = 0.f;
    return b.BatchNorm(nm, x, b.Constant(nm + ".g", {c}, gamma),
                       b.Constant(nm + ".be", {c}, values(c, -0.2f, 0.2f)),
                       b.Constant(nm + ".m", {c}, values(c, -1, 1)),
                       b.Constant(nm + ".v", {c}, values(c, 0.5f, 2)));
  };
  auto prelu = [&](TensorId x, int c, float lo) {
    std::string nm = name("prelu");
    return b.Prelu(nm, x, b.Constant(nm + ".s", {c}, values(c, lo, 0.3f)));
  };
  using P = graph::Precision;
  const int w = width;
  TensorId x = b.Input("image", {11, 9, 3});
  TensorId h = b.Op(name("relu"), OpType::kRelu, {bn(conv(x, 3, w, 3, 1, 1, 0, P::kF32), w)});
  // Pre-activation block: bn, sign, binary conv, bn, hardtanh, binary conv, bn, prelu, add.
  TensorId a = b.Op(name("sign"), OpType::kSign, {bn(h, w)});
  TensorId c1 = conv(a, w, w, 3, 1, 1, 1.f, P::kBinary);
  TensorId t = b.Hardtanh(name("ht"), bn(c1, w, -0.05f, true), -1, 1);
  TensorId c2 = conv(t, w, w, 3, 1, 1, 0.f, P::kBinary, 2);
  h = b.Op(name("add"), OpType::kAdd, {h, prelu(bn(c2, w), w, 0.f)});
  // One batchnorm read by two binary convs (3x3 and a 1x1 shortcut), both stride 2.
  TensorId s = bn(h, w, -0.05f);
  h = b.Op(name("add"), OpType::kAdd,
           {conv(s, w, w, 3, 2, 1, 1.f, P::kBinary), conv(s, w, w, 1, 2, 1, 0.f, P::kBinary)});
  // Binary conv straight into a grouped binary conv, then a prelu with negative slopes.
  TensorId c5 = conv(h, w, 64, 3, 1, 1, 1.f, P::kBinary);
  TensorId c6 = conv(c5, 64, 64, 3, 1, w % 2 == 0 ? 2 : 4, 0.f, P::kBinary);
  TensorId c7 = conv(prelu(c6, 64, -0.3f), 64, 40, 3, 1, 1, 1.f, P::kBinary);
  // Integer and 2-bit layers with batchnorm and relu or hardtanh in their transform.
  TensorId i8 = b.Op(name("relu"), OpType::kRelu, {bn(conv(c7, 40, 32, 3, 1, 1, 0, P::kInt8), 32)});
  TensorId i2 = b.Hardtanh(name("ht"), conv(i8, 32, 32, 3, 1, 1, 0, P::kInt2), -1, 1);
  TensorId i8b = conv(i2, 32, 24, 1, 1, w % 2 == 0 ? 2 : 1, 0, P::kInt8);
  TensorId gap = b.Op(name("gap"), OpType::kGlobalAvgPool, {i8b});
  // Binary dense layers through batchnorm and sign.
  graph::DenseAttrs bd;
  bd.quant = quant(P::kBinary);
  TensorId d1 = b.Dense(name("bdense"), gap, b.Constant("d1.w", {30, 24}, values(720, -1, 1)),
                        b.Constant("d1.b", {30}, values(30, -1, 1)), bd);
  TensorId d1s = b.Op(name("sign"), OpType::kSign, {bn(d1, 30, -0.05f, true)});
  TensorId d2 = b.Dense(name("bdense"), d1s, b.Constant("d2.w", {20, 30}, values(600, -1, 1)),
                        b.Constant("d2.b", {20}, values(20, -1, 1)), bd);
  TensorId d3 = b.Dense(name("dense"), d2, b.Constant("d3.w", {10, 20}, values(200, -1, 1)),
                        b.Constant("d3.b", {10}, values(10, -1, 1)));
  b.Output("final", b.Op("softmax", OpType::kSoftmax, {d3}), graph::OutputKind::kFinal);
  // An exit on the residual stream keeps nothing from fusing: h is read by nodes, not by name.
  TensorId e = b.Dense("exit.fc", b.Op("exit.gap", OpType::kGlobalAvgPool, {h}),
                       b.Constant("e.w", {10, w}, values(10 * w, -1, 1)), -1);
  b.Output("exit", b.Op("exit.softmax", OpType::kSoftmax, {e}), graph::OutputKind::kExit);
  auto g = std::move(b).Build();
  EXPECT_TRUE(g.ok()) << g.message();
  return std::make_shared<const graph::Graph>(std::move(g).value());
}

std::unique_ptr<Executor> Plan(std::shared_ptr<const graph::Graph> g, const std::string& backend,
                               const std::string& float_backend, int threads,
                               bool keep_all = true) {
  PlanOptions o;
  o.backend = backend;
  o.float_backend = float_backend;
  o.batch = 3;
  o.threads = threads;
  o.keep_all = keep_all;
  auto e = Executor::Create(std::move(g), o);
  EXPECT_TRUE(e.ok()) << e.message();
  return e.ok() ? std::move(e).value() : nullptr;
}

class NativeOnTarget : public ::testing::TestWithParam<kernels::Target> {
 protected:
  void SetUp() override { kernels::ForceTarget(GetParam().bits); }
  void TearDown() override { kernels::ForceTarget(0); }
};

TEST_P(NativeOnTarget, WholeBinaryNetworkEqualsRef) {
  for (int width : {17, 64, 70}) {
    auto g = BinaryNet(static_cast<uint32_t>(width), width);
    auto ref = Plan(g, "ref", "", 1);
    auto native = Plan(g, "native", "ref", 2);
    ASSERT_TRUE(ref && native);
    int binary_steps = 0;
    for (const StepInfo& s : native->steps()) {
      binary_steps += s.backend == "native";
      EXPECT_TRUE(s.fallback_reason.empty()) << s.node << ": " << s.fallback_reason;
    }
    EXPECT_EQ(binary_steps, 5);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> input(3 * 11 * 9 * 3);
    for (float& v : input) v = d(rng);
    ASSERT_TRUE(ref->SetInput("image", input).ok());
    ASSERT_TRUE(native->SetInput("image", input).ok());
    ASSERT_TRUE(ref->Run().ok());
    ASSERT_TRUE(native->Run().ok());
    for (graph::TensorId t = 0; t < static_cast<int>(g->tensors.size()); ++t) {
      if (g->tensors[t].is_constant()) continue;
      TensorView a = ref->Tensor(t), b = native->Tensor(t);
      for (int64_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a.data[i], b.data[i])
            << "width " << width << " tensor " << g->tensors[t].name << " index " << i;
      }
    }
  }
}

TEST_P(NativeOnTarget, IntegerNetworkEqualsRef) {
  for (int width : {5, 16, 70}) {
    auto g = IntegerNet(static_cast<uint32_t>(width), width);
    auto ref = Plan(g, "ref", "", 1);
    auto native = Plan(g, "native", "ref", 2);
    ASSERT_TRUE(ref && native);
    int integer_steps = 0;
    for (const StepInfo& s : native->steps()) integer_steps += s.backend == "native";
    EXPECT_EQ(integer_steps, 5);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> input(3 * 10 * 7 * 3);
    for (float& v : input) v = d(rng);
    ASSERT_TRUE(ref->SetInput("image", input).ok());
    ASSERT_TRUE(native->SetInput("image", input).ok());
    ASSERT_TRUE(ref->Run().ok());
    ASSERT_TRUE(native->Run().ok());
    for (graph::TensorId t = 0; t < static_cast<int>(g->tensors.size()); ++t) {
      if (g->tensors[t].is_constant()) continue;
      TensorView a = ref->Tensor(t), b = native->Tensor(t);
      for (int64_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(a.data[i], b.data[i])
            << "width " << width << " tensor " << g->tensors[t].name << " index " << i;
      }
    }
  }
}

// With nothing kept but the named outputs the native backend fuses; the outputs stay bit for bit
// those of ref, which runs every node on its own.
TEST_P(NativeOnTarget, FusedNetworkEqualsRef) {
  for (int width : {17, 64, 70}) {
    auto g = FusableNet(static_cast<uint32_t>(width) + 100, width);
    auto ref = Plan(g, "ref", "", 1, false);
    auto native = Plan(g, "native", "ref", 2, false);
    ASSERT_TRUE(ref && native);
    std::map<std::string, std::vector<std::string>> fused;
    std::map<std::string, std::string> backend;
    for (const StepInfo& s : native->steps()) {
      backend[s.node] = s.backend;
      EXPECT_TRUE(s.fallback_reason.empty()) << s.node << ": " << s.fallback_reason;
      if (!s.fused.empty()) fused[s.node] = s.fused;
      if (s.node.rfind("conv", 0) == 0 && s.node != "conv0") {
        EXPECT_EQ(s.backend, "native") << s.node;
      }
    }
    using V = std::vector<std::string>;
    // Batchnorm and sign before the first binary conv become its input's bitpacking.
    EXPECT_EQ(fused["bn3"], V{"sign4"});
    // Binary conv, batchnorm (a zero and negative scales), hardtanh: bits for the next conv.
    EXPECT_EQ(fused["conv5"], (V{"bn6", "ht7"}));
    // Binary conv with float output through batchnorm and prelu.
    EXPECT_EQ(fused["conv8"], (V{"bn9", "prelu10"}));
    // One batchnorm bitpacked once for the two binary convs that read it.
    EXPECT_EQ(backend["bn12"], "native");
    EXPECT_EQ(fused.count("bn12"), 0u);
    // A prelu with negative slopes is no threshold: the float transform takes it, and conv19
    // bitpacks its input itself.
    EXPECT_EQ(fused["conv17"], V{"prelu18"});
    // Binary conv19 writes bytes for the integer conv20, which with batchnorm and relu writes bit
    // planes for the 2-bit conv23, which with hardtanh writes bytes for the integer conv25.
    EXPECT_EQ(fused["conv20"], (V{"bn21", "relu22"}));
    EXPECT_EQ(fused["conv23"], V{"ht24"});
    // Binary dense to bits for a binary dense.
    EXPECT_EQ(fused["bdense27"], (V{"bn28", "sign29"}));
    // Tensors passed in a kernel's own form or fused away cannot be read.
    for (const char* t :
         {"sign4", "ht7", "bn12", "conv16", "bn6", "sign29", "conv19", "relu22", "ht24"}) {
      auto view = native->Tensor(t);
      ASSERT_FALSE(view.ok()) << t;
      EXPECT_NE(view.message().find("fused it away"), std::string::npos) << view.message();
    }
    std::mt19937 rng(width);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> input(3 * 11 * 9 * 3);
    for (float& v : input) v = d(rng);
    for (int run = 0; run < 2; ++run) {
      ASSERT_TRUE(ref->SetInput("image", input).ok());
      ASSERT_TRUE(native->SetInput("image", input).ok());
      ASSERT_TRUE(ref->Run().ok());
      ASSERT_TRUE(native->Run().ok());
      for (const char* out : {"softmax", "exit.softmax"}) {
        auto a = ref->Tensor(out), b = native->Tensor(out);
        ASSERT_TRUE(a.ok() && b.ok());
        ASSERT_EQ(a->size(), b->size());
        for (int64_t i = 0; i < a->size(); ++i) {
          ASSERT_EQ(a->data[i], b->data[i]) << "width " << width << " " << out << " index " << i;
        }
      }
      for (float& v : input) v = d(rng);
    }
  }
}

TEST_P(NativeOnTarget, RunAllocatesNothing) {
  if (!testing::AllocationCountingWorks()) GTEST_SKIP() << "a sanitizer owns the allocator";
  for (auto g : {BinaryNet(1, 64), IntegerNet(1, 16), FusableNet(1, 70)}) {
    auto native = Plan(g, "native", "xnnpack", 2, g->name == "fusable_net" ? false : true);
    ASSERT_TRUE(native);
    ASSERT_TRUE(native->Run().ok());
    int64_t before = testing::AllocationCount();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(native->Run().ok());
    EXPECT_EQ(testing::AllocationCount() - before, 0) << g->name;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, NativeOnTarget, ::testing::ValuesIn(kernels::SupportedTargets()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(NativeBackend, DelegatesFloatNodesAndExplainsRefusals) {
  auto g = BinaryNet(2, 17);
  auto e = Plan(g, "native", "onednn", 1);
  ASSERT_TRUE(e);
  bool saw_onednn = false;
  for (const StepInfo& s : e->steps()) saw_onednn |= s.backend == "onednn";
  EXPECT_TRUE(saw_onednn);
  PlanOptions o;
  o.backend = "native";
  o.float_backend = "native";
  auto bad = Executor::Create(g, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("cannot be native"), std::string::npos) << bad.message();

  GraphBuilder b("mixed");
  TensorId x = b.Input("x", {8});
  graph::DenseAttrs a;
  a.quant.weight_precision = graph::Precision::kInt4;
  a.quant.activation_precision = graph::Precision::kF32;
  b.Output("y", b.Dense("fc", x, b.Constant("w", {2, 8}, std::vector<float>(16, 0.5f)), -1, a),
           graph::OutputKind::kFinal);
  auto gi = std::make_shared<const graph::Graph>(std::move(b).Build().value());
  o.float_backend = "onednn";
  auto ei = Executor::Create(gi, o);
  ASSERT_TRUE(ei.ok()) << ei.message();
  EXPECT_EQ((*ei)->steps()[0].backend, "ref");
  EXPECT_NE((*ei)->steps()[0].fallback_reason.find("int4 weights with f32 activations"),
            std::string::npos)
      << (*ei)->steps()[0].fallback_reason;
}

}  // namespace
}  // namespace hybrid::engine
