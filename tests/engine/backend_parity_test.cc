// The oneDNN and XNNPACK backends against the ref backend on randomized graphs: odd sizes,
// asymmetric padding, stride 2, dilation, groups, depthwise, residual adds, every f32 op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "engine/executor.h"
#include "graph/builder.h"
#include "tests/engine/alloc_counter.h"

namespace hybrid::engine {
namespace {

using graph::GraphBuilder;
using graph::OpType;
using graph::TensorId;

class RandomGraph {
 public:
  explicit RandomGraph(uint32_t seed) : rng_(seed), b_("random" + std::to_string(seed)) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Coin() { return Uniform(0, 1) == 1; }
  std::vector<float> Values(size_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng_);
    return v;
  }
  std::string Name(const char* what) { return what + std::to_string(counter_++); }

  TensorId Conv(TensorId x, int in_c, int out_c, graph::Conv2dAttrs a, bool bias = true) {
    std::string name = Name("conv");
    size_t n = static_cast<size_t>(out_c) * a.kernel_h * a.kernel_w * (in_c / a.groups);
    TensorId w = b_.Constant(name + ".w", {out_c, a.kernel_h, a.kernel_w, in_c / a.groups},
                             Values(n, -0.5f, 0.5f));
    TensorId bv = bias ? b_.Constant(name + ".b", {out_c}, Values(out_c)) : -1;
    return b_.Conv2d(name, x, w, bv, a);
  }

  // A convolution that keeps the spatial size: odd kernel, padding d*(k-1)/2.
  graph::Conv2dAttrs Same(int k, int dilation, int groups) {
    graph::Conv2dAttrs a;
    a.kernel_h = a.kernel_w = k;
    a.dilation_h = a.dilation_w = dilation;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = dilation * (k - 1) / 2;
    a.groups = groups;
    return a;
  }

  TensorId Activation(TensorId x, int channels) {
    switch (Uniform(0, 2)) {
      case 0:
        return b_.Op(Name("relu"), OpType::kRelu, {x});
      case 1: {
        int slopes = Coin() ? channels : 1;
        return b_.Prelu(
            Name("prelu"), x,
            b_.Constant(Name("slope"), {slopes}, Values(static_cast<size_t>(slopes), 0.f, 0.3f)));
      }
      default:
        return b_.Hardtanh(Name("hardtanh"), x, -0.7f, 0.9f);
    }
  }

  TensorId BatchNorm(TensorId x, int c) {
    std::string name = Name("bn");
    return b_.BatchNorm(name, x, b_.Constant(name + ".g", {c}, Values(c, 0.5f, 1.5f)),
                        b_.Constant(name + ".be", {c}, Values(c)),
                        b_.Constant(name + ".m", {c}, Values(c)),
                        b_.Constant(name + ".v", {c}, Values(c, 0.2f, 2.f)));
  }

  std::shared_ptr<const graph::Graph> Build(int* batch) {
    *batch = Uniform(1, 3);
    int h = Uniform(5, 13), w = Uniform(5, 13), c = std::vector<int>{1, 3, 5, 8}[Uniform(0, 3)];
    TensorId x = b_.Input("image", {h, w, c});
    // Stem: any kernel, stride, dilation and asymmetric padding.
    graph::Conv2dAttrs stem;
    stem.kernel_h = Uniform(1, 3);
    stem.kernel_w = Uniform(1, 3);
    stem.stride_h = Uniform(1, 2);
    stem.stride_w = Uniform(1, 2);
    stem.dilation_h = Uniform(1, 2);
    stem.dilation_w = Uniform(1, 2);
    stem.pad_top = Uniform(0, 2);
    stem.pad_bottom = Uniform(0, 2);
    stem.pad_left = Uniform(0, 2);
    stem.pad_right = Uniform(0, 2);
    int width = std::vector<int>{6, 7, 16}[Uniform(0, 2)];
    TensorId t = Activation(Conv(x, c, width, stem), width);
    // A residual block, its second conv grouped.
    TensorId r =
        Activation(BatchNorm(Conv(t, width, width, Same(3, Uniform(1, 2), 1)), width), width);
    int groups = width % 2 == 0 ? 2 : 1;
    r = BatchNorm(Conv(r, width, width, Same(Coin() ? 3 : 1, 1, groups), Coin()), width);
    t = b_.Op(Name("add"), OpType::kAdd, {t, r});
    // A pool with padding smaller than its window.
    graph::Pool2dAttrs p;
    p.kernel_h = Uniform(2, 3);
    p.kernel_w = Uniform(2, 3);
    p.stride_h = Uniform(1, 2);
    p.stride_w = Uniform(1, 2);
    p.pad_top = Uniform(0, p.kernel_h - 1);
    p.pad_bottom = Uniform(0, p.kernel_h - 1);
    p.pad_left = Uniform(0, p.kernel_w - 1);
    p.pad_right = Uniform(0, p.kernel_w - 1);
    p.count_include_pad = Coin();
    t = b_.Pool(Name("pool"), Coin() ? OpType::kMaxPool2d : OpType::kAvgPool2d, t, p);
    // Depthwise stride-2 branch concatenated with a 1x1 branch along channels.
    graph::Conv2dAttrs dw = Same(3, 1, width);
    dw.stride_h = dw.stride_w = 2;
    TensorId a = Conv(t, width, width, dw);
    graph::Conv2dAttrs pw;
    pw.stride_h = pw.stride_w = 2;
    TensorId bb = Conv(t, width, 5, pw);
    TensorId cat = b_.Concat(Name("cat"), {a, bb}, 3);
    int cat_c = width + 5;
    TensorId gap = b_.Op(Name("gap"), OpType::kGlobalAvgPool, {cat});
    b_.Output("exit", b_.Op(Name("softmax"), OpType::kSoftmax, {Dense(gap, cat_c, 10)}),
              graph::OutputKind::kExit);
    // Spatial size of `cat`, for the dense layer after the flatten.
    auto out = [](int in, int pads, int window, int stride) {
      return (in + pads - window) / stride + 1;
    };
    int sh = out(h, stem.pad_top + stem.pad_bottom, (stem.kernel_h - 1) * stem.dilation_h + 1,
                 stem.stride_h);
    int sw = out(w, stem.pad_left + stem.pad_right, (stem.kernel_w - 1) * stem.dilation_w + 1,
                 stem.stride_w);
    if (sh <= 0 || sw <= 0) return nullptr;
    sh = out(sh, p.pad_top + p.pad_bottom, p.kernel_h, p.stride_h);
    sw = out(sw, p.pad_left + p.pad_right, p.kernel_w, p.stride_w);
    if (sh <= 0 || sw <= 0) return nullptr;
    sh = out(sh, 0, 1, 2);
    sw = out(sw, 0, 1, 2);
    TensorId flat = b_.Op(Name("flatten"), OpType::kFlatten, {cat});
    b_.Output("final", Dense(flat, sh * sw * cat_c, 4), graph::OutputKind::kFinal);
    auto g = std::move(b_).Build();
    EXPECT_TRUE(g.ok()) << g.message();
    if (!g.ok()) return nullptr;
    return std::make_shared<const graph::Graph>(std::move(g).value());
  }

  TensorId Dense(TensorId x, int in_f, int out_f) {
    std::string name = Name("dense");
    return b_.Dense(
        name, x, b_.Constant(name + ".w", {out_f, in_f}, Values(static_cast<size_t>(out_f) * in_f)),
        b_.Constant(name + ".b", {out_f}, Values(out_f)));
  }

 private:
  std::mt19937 rng_;
  GraphBuilder b_;
  int counter_ = 0;
};

std::unique_ptr<Executor> Plan(std::shared_ptr<const graph::Graph> g, const std::string& backend,
                               int batch) {
  PlanOptions o;
  o.backend = backend;
  o.batch = batch;
  o.keep_all = true;
  o.threads = 1;
  auto e = Executor::Create(std::move(g), o);
  EXPECT_TRUE(e.ok()) << backend << ": " << e.message();
  return e.ok() ? std::move(e).value() : nullptr;
}

// Largest error of `got` against `want`, relative to max(1, max|want|).
double RelativeError(const TensorView& want, const TensorView& got) {
  double scale = 1, err = 0;
  for (int64_t i = 0; i < want.size(); ++i)
    scale = std::max(scale, std::fabs(double{want.data[i]}));
  for (int64_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(double{want.data[i]} - got.data[i]));
  }
  return err / scale;
}

class BackendParity : public ::testing::TestWithParam<std::string> {};

TEST_P(BackendParity, MatchesRefOnRandomGraphs) {
  const std::string backend = GetParam();
  int checked = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    RandomGraph rg(seed);
    int batch = 1;
    auto g = rg.Build(&batch);
    if (g == nullptr) continue;  // a random stem that leaves nothing of the image
    auto ref = Plan(g, "ref", batch);
    auto other = Plan(g, backend, batch);
    ASSERT_TRUE(ref && other) << "seed " << seed;
    for (const StepInfo& s : other->steps()) {
      // Only XNNPACK's averaging over padding is allowed to fall back in an f32 graph.
      if (s.fallback_reason.empty()) continue;
      EXPECT_EQ(backend, "xnnpack") << s.node << ": " << s.fallback_reason;
      EXPECT_NE(s.fallback_reason.find("excludes padding"), std::string::npos) << s.fallback_reason;
    }
    auto input = rg.Values(static_cast<size_t>(ref->Tensor("image")->size()));
    ASSERT_TRUE(ref->SetInput("image", input).ok());
    ASSERT_TRUE(other->SetInput("image", input).ok());
    ASSERT_TRUE(ref->Run().ok());
    Status s = other->Run();
    ASSERT_TRUE(s.ok()) << s.message();
    for (graph::TensorId t = 0; t < static_cast<int>(g->tensors.size()); ++t) {
      if (g->tensors[t].is_constant()) continue;
      double err = RelativeError(ref->Tensor(t), other->Tensor(t));
      EXPECT_LE(err, 1e-4) << backend << " seed " << seed << " tensor " << g->tensors[t].name;
    }
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST_P(BackendParity, FallsBackOnlyWhereItMust) {
  // A binary convolution and a sign: neither backend runs them, both say why.
  GraphBuilder b("binary");
  TensorId x = b.Input("x", {5, 5, 4});
  graph::Conv2dAttrs a;
  a.kernel_h = a.kernel_w = 3;
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
  a.pad_value = 1.f;
  a.quant.weight_precision = a.quant.activation_precision = graph::Precision::kBinary;
  TensorId c =
      b.Conv2d("bconv", x, b.Constant("w", {4, 3, 3, 4}, std::vector<float>(144, 0.1f)), -1, a);
  b.Output("y", b.Op("sign", OpType::kSign, {c}), graph::OutputKind::kFinal);
  auto g = std::make_shared<const graph::Graph>(std::move(b).Build().value());
  PlanOptions o;
  o.backend = GetParam();
  auto e = Executor::Create(g, o);
  ASSERT_TRUE(e.ok()) << e.message();
  ASSERT_EQ((*e)->steps().size(), 2u);
  EXPECT_EQ((*e)->steps()[0].backend, "ref");
  EXPECT_NE((*e)->steps()[0].fallback_reason.find("binary"), std::string::npos)
      << (*e)->steps()[0].fallback_reason;
  EXPECT_NE((*e)->steps()[1].fallback_reason.find("sign"), std::string::npos);
  o.fallback = false;
  auto strict = Executor::Create(g, o);
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.message().find("bconv"), std::string::npos) << strict.message();
}

TEST_P(BackendParity, RunAllocatesNothingOfOurOwn) {
  if (!testing::AllocationCountingWorks()) GTEST_SKIP() << "a sanitizer owns the allocator";
  RandomGraph rg(3);
  int batch = 1;
  auto g = rg.Build(&batch);
  ASSERT_TRUE(g);
  auto e = Plan(g, GetParam(), batch);
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->Run().ok());
  std::vector<int64_t> per_run;
  for (int i = 0; i < 5; ++i) {
    int64_t before = testing::AllocationCount();
    ASSERT_TRUE(e->Run().ok());
    per_run.push_back(testing::AllocationCount() - before);
  }
  if (GetParam() == "onednn") {
    // oneDNN's dnnl_primitive_execute builds its own argument map and execution context inside
    // the library, a few allocations per primitive that no caller can avoid (about 6 with
    // libdnnl 2.6). The count must stay bounded and the same on every run: nothing grows.
    int64_t primitives = 0;
    for (const StepInfo& s : e->steps()) primitives += s.backend == "onednn";
    RecordProperty("onednn_allocations_per_run", static_cast<int>(per_run[0]));
    for (int64_t n : per_run) EXPECT_EQ(n, per_run[0]);
    EXPECT_LE(per_run[0], 8 * primitives);
  } else {
    for (int64_t n : per_run) EXPECT_EQ(n, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendParity, ::testing::Values("onednn", "xnnpack"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace hybrid::engine
