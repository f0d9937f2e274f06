// Small graphs shared by the graph tests.
#pragma once

#include <random>
#include <vector>

#include "graph/builder.h"

namespace hybrid::graph::testing {

inline std::vector<float> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// conv(edge) -> relu -> exit head; conv(cloud) -> global pool -> dense -> softmax.
inline Graph TinyHybridGraph() {
  GraphBuilder b("tiny");
  TensorId x = b.Input("image", {8, 8, 1});
  Conv2dAttrs c;
  c.kernel_h = c.kernel_w = 3;
  c.pad_top = c.pad_bottom = c.pad_left = c.pad_right = 1;
  TensorId w1 = b.Constant("w1", {4, 3, 3, 1}, RandomValues(36, 1));
  TensorId h = b.Op("relu1", OpType::kRelu, {b.Conv2d("conv1", x, w1, -1, c)});
  TensorId gp = b.Op("exit_pool", OpType::kGlobalAvgPool, {h});
  TensorId we = b.Constant("we", {3, 4}, RandomValues(12, 2));
  b.Output("exit", b.Op("exit_softmax", OpType::kSoftmax, {b.Dense("exit_fc", gp, we, -1)}),
           OutputKind::kExit);
  b.SetPartition(Partition::kCloud);
  TensorId w2 = b.Constant("w2", {5, 3, 3, 4}, RandomValues(180, 3));
  TensorId bias2 = b.Constant("b2", {5}, RandomValues(5, 4));
  TensorId h2 = b.Op("relu2", OpType::kRelu, {b.Conv2d("conv2", h, w2, bias2, c)});
  TensorId f = b.Op("flatten", OpType::kFlatten, {h2});
  TensorId wf = b.Constant("wf", {3, 320}, RandomValues(960, 5));
  b.Output("final", b.Op("softmax", OpType::kSoftmax, {b.Dense("fc", f, wf, -1)}),
           OutputKind::kFinal);
  b.graph().dataset = "test";
  b.graph().input_mean = {0.5f};
  b.graph().input_std = {0.25f};
  b.graph().class_names = {"a", "b", "c"};
  b.graph().metadata["recipe"] = "none";
  auto g = std::move(b).Build();
  if (!g.ok()) throw std::runtime_error(g.message());
  return std::move(g).value();
}

}  // namespace hybrid::graph::testing
