#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "graph/model_file.h"
#include "graph/partition.h"
#include "graph/validate.h"
#include "tools/commands.h"

namespace hybrid::tools {
namespace {

std::string Human(int64_t v) {
  if (v >= 1'000'000'000) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1'000'000) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 10'000) return fmt::format("{:.1f}K", v / 1e3);
  return std::to_string(v);
}

std::string Precisions(const graph::Node& n) {
  const graph::Quantization* q = nullptr;
  if (const auto* c = std::get_if<graph::Conv2dAttrs>(&n.attrs)) q = &c->quant;
  if (const auto* d = std::get_if<graph::DenseAttrs>(&n.attrs)) q = &d->quant;
  if (q == nullptr) return "";
  return fmt::format("w:{} a:{}", graph::ToString(q->weight_precision),
                     graph::ToString(q->activation_precision));
}

nlohmann::json PartitionJson(const graph::PartitionCost& p) {
  nlohmann::json macs;
  for (int i = 0; i < graph::kNumPrecisions; ++i) {
    if (p.macs[i]) macs[std::string(graph::ToString(static_cast<graph::Precision>(i)))] = p.macs[i];
  }
  return {{"nodes", p.nodes}, {"params", p.params}, {"param_bytes", p.param_bytes}, {"macs", macs}};
}

int Inspect(const std::string& path, const std::string& json_path) {
  auto g = graph::LoadModelFile(path);
  if (!g.ok()) {
    std::cerr << "error: " << g.message() << "\n";
    return 1;
  }
  auto cost = graph::AnalyzeCost(*g);
  if (!cost.ok()) {
    std::cerr << "error: " << cost.message() << "\n";
    return 1;
  }
  auto shapes = graph::InferShapes(*g, 1);
  auto version = graph::ModelFingerprint(*g);
  if (!version.ok()) {
    std::cerr << "error: " << version.message() << "\n";
    return 1;
  }
  std::cout << fmt::format(
      "model      {}\nversion    {} (content fingerprint)\nfile       {} (format version {})\n",
      g->name, *version, path, graph::kModelFormatVersion);
  if (!g->dataset.empty()) std::cout << fmt::format("dataset    {}\n", g->dataset);
  for (graph::TensorId t : g->inputs) {
    std::cout << fmt::format("input      {} {}\n", g->tensors[t].name,
                             graph::ShapeToString(g->tensors[t].shape));
  }
  for (const graph::NamedOutput& o : g->outputs) {
    std::cout << fmt::format("output     {} ({}) <- {} {}\n", o.name, graph::ToString(o.kind),
                             g->tensors[o.tensor].name,
                             graph::ShapeToString(g->tensors[o.tensor].shape));
  }
  // The recipe is a whole file: --json carries it.
  for (const auto& [key, value] : g->metadata) {
    if (key == "recipe") {
      std::cout << fmt::format("metadata   recipe ({} bytes; --json shows it)\n", value.size());
    } else {
      std::cout << fmt::format("metadata   {} = {}\n", key, value);
    }
  }
  size_t width = 24;  // the node column fits the longest name
  for (const graph::Node& n : g->nodes) width = std::max(width, n.name.size());
  std::cout << fmt::format("\n{:<{}} {:<15} {:<9} {:<16} {:<20} {:>10} {:>10}\n", "node", width,
                           "op", "partition", "output", "precision", "MACs", "params");
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const graph::Node& n = g->nodes[i];
    const graph::NodeCost& c = cost->nodes[i];
    std::cout << fmt::format("{:<{}} {:<15} {:<9} {:<16} {:<20} {:>10} {:>10}\n", n.name, width,
                             graph::ToString(n.op), graph::ToString(n.partition),
                             graph::ShapeToString(g->tensors[n.outputs[0]].shape), Precisions(n),
                             c.macs ? Human(c.macs) : "", c.params ? Human(c.params) : "");
  }
  std::cout << "\nper sample     nodes     params  param bytes  MACs by precision\n";
  for (auto [name, p] : {std::pair{"edge", &cost->edge}, std::pair{"cloud", &cost->cloud}}) {
    std::string macs;
    for (int i = 0; i < graph::kNumPrecisions; ++i) {
      if (p->macs[i]) {
        macs += fmt::format("{}{}={}", macs.empty() ? "" : " ",
                            graph::ToString(static_cast<graph::Precision>(i)), Human(p->macs[i]));
      }
    }
    std::cout << fmt::format("{:<12} {:>7} {:>10} {:>12}  {}\n", name, p->nodes, Human(p->params),
                             Human(p->param_bytes), macs.empty() ? "-" : macs);
  }
  std::cout << fmt::format("edge -> cloud  {} bytes per sample (f32)\n", cost->boundary_bytes);

  if (!json_path.empty()) {
    nlohmann::json j;
    j["model"] = g->name;
    j["version"] = *version;
    j["file"] = path;
    j["format_version"] = graph::kModelFormatVersion;
    j["dataset"] = g->dataset;
    j["class_names"] = g->class_names;
    j["metadata"] = g->metadata;
    for (size_t i = 0; i < g->nodes.size(); ++i) {
      const graph::Node& n = g->nodes[i];
      j["nodes"].push_back({{"name", n.name},
                            {"op", graph::ToString(n.op)},
                            {"partition", graph::ToString(n.partition)},
                            {"output_shape", (*shapes)[n.outputs[0]]},
                            {"macs", cost->nodes[i].macs},
                            {"params", cost->nodes[i].params}});
    }
    j["edge"] = PartitionJson(cost->edge);
    j["cloud"] = PartitionJson(cost->cloud);
    j["boundary_bytes"] = cost->boundary_bytes;
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::cerr << "error: cannot write '" << json_path << "'\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

void RegisterInspect(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "inspect", "Show a model's nodes, partitions, parameters, bytes and MACs by precision.");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  cmd->add_option("MODEL", *path, "model file (.hybrid)")->required();
  cmd->add_option("--json", *json, "also write the report as JSON to this file");
  cmd->callback([&exit_code, path, json] { exit_code = Inspect(*path, *json); });
}

}  // namespace hybrid::tools
