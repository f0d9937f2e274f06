// Small split models for the network tests.
#pragma once

#include <memory>
#include <random>

#include "graph/builder.h"

namespace hybrid::net::testing {

// A 9x7x3 image, an f32 conv and hardtanh on the edge; a cloud whose first layer, a conv quantized
// with `p`, reads the hardtanh's output: the edge sends that tensor in `p`'s wire form.
inline std::shared_ptr<const graph::Graph> SplitModel(graph::Precision p) {
  using graph::Precision;
  graph::GraphBuilder b(p == Precision::kInt8   ? "split-int8"
                        : p == Precision::kInt4 ? "split-int4"
                        : p == Precision::kInt2 ? "split-int2"
                                                : "split-bits");
  std::mt19937 rng(11);
  auto values = [&](size_t n) {
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  graph::TensorId x = b.Input("image", {9, 7, 3});
  graph::Conv2dAttrs a;
  a.kernel_h = a.kernel_w = 3;
  a.pad_top = a.pad_bottom = a.pad_left = a.pad_right = 1;
  graph::TensorId h = b.Conv2d("edge.conv", x, b.Constant("ew", {6, 3, 3, 3}, values(162)), -1, a);
  h = b.Hardtanh("edge.act", h, -1, 1);
  graph::TensorId gap = b.Op("exit.gap", graph::OpType::kGlobalAvgPool, {h});
  graph::TensorId e = b.Dense("exit.fc", gap, b.Constant("xw", {5, 6}, values(30)), -1);
  b.Output("exit", b.Op("exit.softmax", graph::OpType::kSoftmax, {e}), graph::OutputKind::kExit);
  b.SetPartition(graph::Partition::kCloud);
  graph::Conv2dAttrs q = a;
  q.quant.weight_precision = p;
  q.quant.activation_precision = p;
  q.quant.act_scale = p == Precision::kInt8 ? 0.01f : p == Precision::kInt4 ? 0.14f : 0.4f;
  q.quant.act_zero_point = p == Precision::kInt4 ? 7 : p == Precision::kInt2 ? 1 : 0;
  q.quant.act_signed = p == Precision::kInt8;
  q.pad_value = p == Precision::kBinary ? 1.f : 0.f;
  h = b.Conv2d("cloud.conv", h, b.Constant("cw", {8, 3, 3, 6}, values(432)),
               b.Constant("cb", {8}, values(8)), q);
  h = b.Op("cloud.gap", graph::OpType::kGlobalAvgPool, {h});
  h = b.Dense("cloud.fc", h, b.Constant("fw", {5, 8}, values(40)),
              b.Constant("fb", {5}, values(5)));
  b.Output("final", b.Op("cloud.softmax", graph::OpType::kSoftmax, {h}), graph::OutputKind::kFinal);
  b.graph().input_mean = {0.5f};
  b.graph().input_std = {0.25f};
  auto g = std::move(b).Build();
  if (!g.ok()) throw std::runtime_error(g.message());
  return std::make_shared<const graph::Graph>(std::move(g).value());
}

}  // namespace hybrid::net::testing
