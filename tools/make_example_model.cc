// Writes a small shape-A example model (full-precision stem, a binary block and an early exit on
// the edge; a full-precision remainder in the cloud) with deterministic random weights. It
// exercises every part of the engine until the trainer ships real models; its accuracy is chance.
#include <cmath>
#include <iostream>
#include <random>

#include "graph/builder.h"
#include "graph/model_file.h"

namespace {

using namespace hybrid::graph;  // NOLINT(google-build-using-namespace): a small program

class Maker {
 public:
  explicit Maker(GraphBuilder& b) : b_(b), rng_(2024) {}

  std::vector<float> Normal(size_t n, float stddev) {
    std::normal_distribution<float> d(0.f, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng_);
    return v;
  }

  TensorId Conv(const std::string& name, TensorId x, int in_c, int out_c, int k, int stride,
                Precision precision) {
    Conv2dAttrs a;
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = k / 2;
    a.quant.weight_precision = a.quant.activation_precision = precision;
    // Binary layers pad with +1 so that padding is free in the XOR-popcount kernels.
    a.pad_value = precision == Precision::kBinary ? 1.f : 0.f;
    size_t n = static_cast<size_t>(out_c) * k * k * in_c;
    TensorId w = b_.Constant(name + ".weight", {out_c, k, k, in_c},
                             Normal(n, std::sqrt(2.f / static_cast<float>(k * k * in_c))));
    return b_.Conv2d(name, x, w, -1, a);
  }

  TensorId Bn(const std::string& name, TensorId x, int c) {
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    std::vector<float> gamma(c), var(c);
    for (int i = 0; i < c; ++i) {
      gamma[i] = u(rng_);
      var[i] = u(rng_);
    }
    return b_.BatchNorm(name, x, b_.Constant(name + ".gamma", {c}, gamma),
                        b_.Constant(name + ".beta", {c}, Normal(c, 0.1f)),
                        b_.Constant(name + ".mean", {c}, Normal(c, 0.1f)),
                        b_.Constant(name + ".var", {c}, var));
  }

  TensorId Head(const std::string& name, TensorId x, int c, int classes) {
    TensorId pooled = b_.Op(name + ".pool", OpType::kGlobalAvgPool, {x});
    TensorId w = b_.Constant(name + ".fc.weight", {classes, c},
                             Normal(static_cast<size_t>(classes) * c, 1.f / std::sqrt(c)));
    TensorId bias = b_.Constant(name + ".fc.bias", {classes}, std::vector<float>(classes, 0.f));
    return b_.Op(name + ".softmax", OpType::kSoftmax, {b_.Dense(name + ".fc", pooled, w, bias)});
  }

 private:
  GraphBuilder& b_;
  std::mt19937 rng_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: hybrid_make_example OUT.hybrid\n";
    return 2;
  }
  GraphBuilder b("example-shape-a-random");
  Maker m(b);
  TensorId x = b.Input("image", {28, 28, 1});
  // Edge: full-precision stem, one binary pre-activation block with a residual add, an exit.
  TensorId h = b.Op("stem.relu", OpType::kRelu,
                    {m.Bn("stem.bn", m.Conv("stem.conv", x, 1, 16, 3, 1, Precision::kF32), 16)});
  TensorId r = m.Bn(
      "block1.bn",
      m.Conv("block1.conv", m.Bn("block1.pre_bn", h, 16), 16, 16, 3, 1, Precision::kBinary), 16);
  h = b.Op("block1.add", OpType::kAdd, {h, r});
  Pool2dAttrs p;
  p.kernel_h = p.kernel_w = p.stride_h = p.stride_w = 2;
  h = b.Pool("pool1", OpType::kMaxPool2d, h, p);
  b.Output("exit1", m.Head("exit1", h, 16, 10), OutputKind::kExit);
  // Cloud: the full-precision remainder.
  b.SetPartition(Partition::kCloud);
  h = b.Op("conv2.relu", OpType::kRelu,
           {m.Bn("conv2.bn", m.Conv("conv2", h, 16, 32, 3, 1, Precision::kF32), 32)});
  h = b.Pool("pool2", OpType::kMaxPool2d, h, p);
  h = b.Op("conv3.relu", OpType::kRelu,
           {m.Bn("conv3.bn", m.Conv("conv3", h, 32, 64, 3, 1, Precision::kF32), 64)});
  b.Output("final", m.Head("final", h, 64, 10), OutputKind::kFinal);

  Graph& g = b.graph();
  g.dataset = "fashion-mnist";
  g.input_mean = {0.2860f};
  g.input_std = {0.3530f};
  g.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  g.metadata["recipe"] = "untrained: deterministic random weights (tools/make_example_model.cc)";
  auto built = std::move(b).Build();
  if (!built.ok()) {
    std::cerr << "error: " << built.message() << "\n";
    return 1;
  }
  if (auto s = WriteModelFile(*built, argv[1]); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
