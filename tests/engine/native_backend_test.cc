// The native backend on whole binary networks: with ref as its float backend it must give the ref
// backend's results bit for bit, on every SIMD target this machine supports.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <tuple>

#include "engine/executor.h"
#include "graph/builder.h"
#include "kernels/dispatch.h"
#include "tests/kernels/target_printer.h"
#include "tests/engine/alloc_counter.h"

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
  h = conv(h, width, 20, 1, 1, quant(P::kInt2, P::kInt2));
  h = conv(h, 20, 20, 1, 1, quant(P::kInt4, P::kInt8));
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

std::unique_ptr<Executor> Plan(std::shared_ptr<const graph::Graph> g, const std::string& backend,
                               const std::string& float_backend, int threads) {
  PlanOptions o;
  o.backend = backend;
  o.float_backend = float_backend;
  o.batch = 3;
  o.threads = threads;
  o.keep_all = true;
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

TEST_P(NativeOnTarget, RunAllocatesNothing) {
  if (!testing::AllocationCountingWorks()) GTEST_SKIP() << "a sanitizer owns the allocator";
  for (auto g : {BinaryNet(1, 64), IntegerNet(1, 16)}) {
    auto native = Plan(g, "native", "xnnpack", 2);
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
