#include "train/export.h"

#include "graph/builder.h"

namespace hybrid::train {
namespace {

graph::TensorId Softmax(graph::GraphBuilder& b, const std::string& name, graph::TensorId x) {
  return b.Op(name, graph::OpType::kSoftmax, {x});
}

}  // namespace

Result<graph::Graph> ExportGraph(const Trained& t) {
  torch::NoGradGuard no_grad;
  t.nets.Train(false);
  const Recipe& r = t.recipe;
  const Splits& s = t.splits;
  graph::GraphBuilder b(r.name);
  Exporter e(b);
  b.SetPartition(graph::Partition::kEdge);
  const graph::TensorId image = b.Input("image", {s.size, s.size, s.channels});
  graph::Graph& g = b.graph();
  if (t.nets.net) {
    const ExportedNet net = t.nets.net.ptr()->Export(e, "", image, r.split_after, false);
    b.SetPartition(graph::Partition::kEdge);
    for (size_t i = 0; i < net.exits.size(); ++i) {
      const std::string name = "exit" + std::to_string(i);
      b.Output(name, Softmax(b, name + ".softmax", net.exits[i]), graph::OutputKind::kExit);
    }
    b.SetPartition(graph::Partition::kCloud);
    b.Output("final", Softmax(b, "final.softmax", net.logits), graph::OutputKind::kFinal);
    g.metadata["shape"] = "A";
    g.metadata["split"] = r.split;
  } else {
    const ExportedNet edge = t.nets.edge.ptr()->Export(e, "edge.", image, -1, true);
    b.Output("edge", Softmax(b, "edge.softmax", edge.logits), graph::OutputKind::kExit);
    b.Output("edge.pooled", edge.pooled, graph::OutputKind::kOther);
    const int features =
        RouterFeatureCount(s.classes, r.router.pooled_features ? r.edge.stages.back().channels : 0);
    const graph::TensorId in = b.Input("router.features", {features});
    b.Output("router", t.nets.router.ptr()->Export(e, "router", in), graph::OutputKind::kRouter);
    b.SetPartition(graph::Partition::kCloud);
    const ExportedNet cloud = t.nets.cloud.ptr()->Export(e, "cloud.", image, -1, false);
    b.Output("cloud", Softmax(b, "cloud.softmax", cloud.logits), graph::OutputKind::kFinal);
    g.metadata["shape"] = "B";
    g.metadata["router.features"] = r.router.pooled_features
                                        ? "entropy,top10-margins,pooled:edge.pooled"
                                        : "entropy,top10-margins";
  }
  g.dataset = r.dataset;
  g.input_mean = r.mean;
  g.input_std = r.std;
  g.class_names = s.class_names;
  g.metadata["recipe"] = r.text;
  for (const auto& [name, acc] : t.validation_accuracy) {
    g.metadata["accuracy.validation." + name] = fmt::format("{:.4f}", acc);
  }
  for (const auto& [name, acc] : t.test_accuracy) {
    g.metadata["accuracy.test." + name] = fmt::format("{:.4f}", acc);
  }
  return std::move(b).Build();
}

}  // namespace hybrid::train
