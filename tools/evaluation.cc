#include "tools/evaluation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/executor.h"
#include "graph/model_file.h"
#include "router/router.h"

namespace hybrid::tools {
namespace {

const graph::NamedOutput* FinalOutput(const graph::Graph& g) {
  for (const graph::NamedOutput& o : g.outputs) {
    if (o.kind == graph::OutputKind::kFinal) return &o;
  }
  return nullptr;
}

// Runs both partitions over `indices` of `ds` in batches; fills per-sample correctness and scores.
Status RunSplit(const ModelEval& m, const data::Dataset& ds, const std::vector<int64_t>& indices,
                engine::Executor& edge, engine::Transport* cloud,
                const router::LearnedRouter* learned, const std::string& what, const EvalOptions& o,
                SplitResults* out, TransportTotals* totals) {
  const graph::Graph& g = *m.graph;
  const int batch = edge.options().batch;
  const graph::TensorId image = g.inputs[0];
  const engine::TensorView in = edge.Tensor(image);
  const engine::TensorView probs = edge.Tensor(g.FindOutput(m.exit)->tensor);
  const int classes = static_cast<int>(probs.size() / batch);
  const graph::TensorId logits_id = engine::LogitsOf(g, m.exit);
  const engine::TensorView logits = logits_id >= 0 ? edge.Tensor(logits_id) : engine::TensorView{};
  std::vector<float> scratch(static_cast<size_t>(classes));
  engine::TensorView pooled;
  if (learned != nullptr && learned->pooled())
    pooled = edge.Tensor(g.FindOutput("edge.pooled")->tensor);
  std::vector<float> cloud_probs(static_cast<size_t>(batch) * classes);
  // What the cloud reads, from the edge's buffers (the image itself for a selective model).
  std::vector<engine::TensorView> sent;
  for (const engine::WireTensor& w : m.wire) {
    sent.push_back(g.FindTensor(w.name) == image ? in : edge.Tensor(g.FindTensor(w.name)));
  }
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t per = ds.image_size();
  for (const char* r : {"maxprob", "entropy", "margin", "learned"}) {
    if (std::string(r) != "learned" || learned != nullptr) out->scores[r].reserve(n);
  }
  int64_t reported = 0;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min<int64_t>(batch, n - first);
    for (int64_t i = 0; i < count; ++i) {
      data::NormalizeImage(ds, indices[first + i], g.input_mean, g.input_std, in.data + i * per);
    }
    std::fill(in.data + count * per, in.data + in.size(), 0.f);
    HYBRID_RETURN_IF_ERROR(edge.Run());
    engine::CloudReply reply;
    if (cloud != nullptr) {
      engine::CloudRequest request;
      request.count = static_cast<int>(count);
      for (const engine::TensorView& v : sent) {
        request.inputs.emplace_back(v.data, static_cast<size_t>(v.size() / batch * count));
      }
      HYBRID_RETURN_IF_ERROR(cloud->Infer(request, cloud_probs, &reply).WithContext(what));
      ++totals->requests;
      totals->samples += count;
      totals->attempts += reply.attempts;
      totals->bytes_sent += reply.bytes_sent;
      totals->bytes_received += reply.bytes_received;
      totals->call_ms += reply.call_ms;
      totals->server_ms += reply.server_ms;
      if (!reply.answered) totals->degraded += count;
    }
    for (int64_t i = 0; i < count; ++i) {
      const int32_t label = ds.labels[indices[first + i]];
      const std::span<const float> row(probs.data + i * classes, static_cast<size_t>(classes));
      const auto argmax = [](std::span<const float> r) {
        return static_cast<int32_t>(std::max_element(r.begin(), r.end()) - r.begin());
      };
      out->labels.push_back(label);
      out->edge_right.push_back(argmax(row) == label);
      if (cloud != nullptr) {
        // Without the cloud's answer the edge's stands, as in a session.
        const int32_t c =
            reply.answered
                ? argmax(std::span<const float>(cloud_probs.data() + i * classes, classes))
                : argmax(row);
        out->cloud_label.push_back(c);
        out->cloud_right.push_back(c == label);
        if (o.router_features) {
          out->cloud_p_true.push_back(reply.answered ? cloud_probs[i * classes + label]
                                                     : row[label]);
        }
      }
      if (o.router_features) out->edge_p_true.push_back(row[label]);
      const auto z = engine::LogitsRow(logits, probs, classes, static_cast<int>(i), &scratch);
      out->scores["maxprob"].push_back(router::MaxProbScore(z));
      out->scores["entropy"].push_back(router::EntropyScore(z));
      out->scores["margin"].push_back(router::MarginScore(z));
      if (learned != nullptr) {
        std::span<const float> p;
        if (pooled.data != nullptr) {
          const int64_t pc = pooled.size() / batch;
          p = std::span<const float>(pooled.data + i * pc, static_cast<size_t>(pc));
        }
        // The features the score is computed from, kept when asked for.
        const std::vector<float> f = router::RouterFeatures(row, p);
        out->scores["learned"].push_back(learned->Score(f));
        if (o.router_features) {
          out->router_feature_count = static_cast<int>(f.size());
          out->router_features.insert(out->router_features.end(), f.begin(), f.end());
        }
      }
    }
    const int64_t done = first + count;
    if (o.progress && (done - reported >= std::max<int64_t>(n / 5, 1) || done == n)) {
      o.progress(fmt::format("{}: {}/{} samples", what, done, n));
      reported = done;
    }
  }
  if (cloud == nullptr) {
    out->cloud_right = out->edge_right;
    out->cloud_p_true = out->edge_p_true;
  }
  return Status::Ok();
}

}  // namespace

router::Outcomes SplitResults::For(const std::string& r) const {
  router::Outcomes o;
  o.edge_right = edge_right;
  o.cloud_right = cloud_right;
  if (r == "oracle") {
    // Keep first what only the edge gets right, last what only the cloud gets right; distinct
    // scores so that any coverage is reached to the sample.
    const size_t n = edge_right.size();
    o.score.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int gain = (edge_right[i] != 0) - (cloud_right[i] != 0);
      o.score[i] = static_cast<float>(-gain) + static_cast<float>(i) / static_cast<float>(2 * n);
    }
  } else {
    o.score = scores.at(r);
  }
  return o;
}

HeldOut HeldOutOf(const graph::Graph& g) {
  HeldOut h;
  auto it = g.metadata.find("recipe");
  if (it == g.metadata.end()) return h;
  try {
    const nlohmann::json j = nlohmann::json::parse(it->second);
    h.seed = j.value("seed", h.seed);
    h.count = j.value("validation", h.count);
    h.from_recipe = true;
  } catch (const nlohmann::json::exception&) {
    // Not a trainer's recipe: the defaults.
  }
  return h;
}

double Fp32EdgeEnergyUj(const ModelEval& m, const router::EnergyTable& table) {
  // A cloud that reads the raw image is a model of its own (selective query).
  const bool selective = std::any_of(m.wire.begin(), m.wire.end(), [](const engine::WireTensor& w) {
    return w.form == engine::WireTensor::Form::kPixels;
  });
  if (selective) return router::Fp32EnergyUj(m.cost.cloud, table);
  return router::Fp32EnergyUj(m.cost.edge, table) + router::Fp32EnergyUj(m.cost.cloud, table);
}

Result<ModelEval> EvaluateModel(const std::string& path, const EvalOptions& o) {
  ModelEval m;
  HYBRID_ASSIGN_OR_RETURN(graph::Graph loaded, graph::LoadModelFile(path));
  m.graph = std::make_shared<const graph::Graph>(std::move(loaded));
  const graph::Graph& g = *m.graph;
  m.exit = o.exit.empty() ? engine::DefaultExit(g) : o.exit;
  if (m.exit.empty() || g.FindOutput(m.exit) == nullptr) {
    return Error("the model has no exit '{}' to decide at the edge", m.exit);
  }
  const graph::NamedOutput* final_out = FinalOutput(g);
  if (final_out == nullptr) return Error("the model has no final classifier");
  const std::string dataset = o.dataset.empty() ? g.dataset : o.dataset;
  if (dataset.empty()) return Error("the model names no dataset: pass --dataset");
  HYBRID_ASSIGN_OR_RETURN(data::Dataset train,
                          data::LoadDataset(dataset, o.data_dir, data::Split::kTrain));
  HYBRID_ASSIGN_OR_RETURN(m.test_set, data::LoadDataset(dataset, o.data_dir, data::Split::kTest));
  HYBRID_RETURN_IF_ERROR(data::CheckNormalization(m.test_set, g.input_mean, g.input_std));
  const graph::Shape want = {graph::kBatchDim, m.test_set.height, m.test_set.width,
                             m.test_set.channels};
  if (g.inputs.empty() || g.tensors[g.inputs[0]].shape != want) {
    return Error("the model's input is not a {} image", graph::ShapeToString(want));
  }
  HYBRID_ASSIGN_OR_RETURN(m.cost, graph::AnalyzeCost(g));
  m.costs.edge = m.cost.edge;
  m.costs.cloud = m.cost.cloud;
  m.wire = engine::CloudWire(g);
  for (const engine::WireTensor& w : m.wire) m.costs.bytes_per_sent += w.bytes;

  std::unique_ptr<router::LearnedRouter> learned;
  m.routers = {"entropy", "maxprob", "margin"};
  const bool has_router = std::any_of(g.outputs.begin(), g.outputs.end(), [](const auto& out) {
    return out.kind == graph::OutputKind::kRouter;
  });
  if (has_router) {
    HYBRID_ASSIGN_OR_RETURN(router::LearnedRouter r, router::LearnedRouter::FromGraph(g));
    learned = std::make_unique<router::LearnedRouter>(std::move(r));
    m.routers.insert(m.routers.begin(), "learned");
  }
  engine::PlanOptions eo;
  eo.backend = o.edge_backend;
  eo.batch = o.batch;
  eo.threads = o.threads;
  eo.scope = engine::Scope::kEdge;
  eo.outputs = {m.exit};
  if (engine::LogitsOf(g, m.exit) >= 0)
    eo.outputs.push_back(g.tensors[engine::LogitsOf(g, m.exit)].name);
  if (learned && learned->pooled()) eo.outputs.push_back("edge.pooled");
  for (const engine::WireTensor& w : m.wire) {
    if (w.form != engine::WireTensor::Form::kPixels) eo.outputs.push_back(w.name);
  }
  HYBRID_ASSIGN_OR_RETURN(auto edge, engine::Executor::Create(m.graph, eo));
  std::unique_ptr<engine::Transport> cloud;
  if (o.make_transport) {
    HYBRID_ASSIGN_OR_RETURN(cloud, o.make_transport(m.graph, o.batch));
  } else {
    HYBRID_ASSIGN_OR_RETURN(
        cloud, engine::MakeInProcessTransport(m.graph, o.cloud_backend, o.batch, o.threads));
  }

  const HeldOut held = HeldOutOf(g);
  if (!held.from_recipe && o.progress) {
    o.progress(
        fmt::format("note: the model carries no recipe; calibrating on the {} training "
                    "samples seed {} holds out",
                    held.count, held.seed));
  }
  const data::HeldOutSplit split = data::SplitHeldOut(train.count, held.seed, held.count);
  HYBRID_RETURN_IF_ERROR(RunSplit(m, train, split.held_out, *edge, cloud.get(), learned.get(),
                                  "validation", o, &m.validation, &m.transport));
  if (o.train_split) {
    HYBRID_RETURN_IF_ERROR(RunSplit(m, train, split.train, *edge, cloud.get(), learned.get(),
                                    "training", o, &m.train, &m.transport));
  }
  std::vector<int64_t> test(m.test_set.count);
  for (int64_t i = 0; i < m.test_set.count; ++i) test[i] = i;
  if (o.limit > 0 && o.limit < m.test_set.count) test.resize(o.limit);
  HYBRID_RETURN_IF_ERROR(RunSplit(m, m.test_set, test, *edge, cloud.get(), learned.get(), "test", o,
                                  &m.test, &m.transport));
  return m;
}

}  // namespace hybrid::tools
