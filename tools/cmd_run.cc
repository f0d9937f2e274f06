#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "data/dataset.h"
#include "engine/executor.h"
#include "graph/model_file.h"
#include "tools/cloud_options.h"
#include "tools/commands.h"

namespace hybrid::tools {
namespace {

struct RunArgs {
  std::string model, dataset, data_dir, split = "test", backend = "native", json, predictions;
  int64_t index = -1;
  bool all = false, no_fallback = false;
  int threads = 0, batch = 64, top = 3;
  int64_t limit = 0;
  CloudArgs cloud;
};

// The outputs worth scoring as classifiers: the exits and the final classifier (not router scores
// nor other tensors a model names).
std::vector<const graph::NamedOutput*> Classifiers(const graph::Graph& g) {
  std::vector<const graph::NamedOutput*> out;
  for (const graph::NamedOutput& o : g.outputs) {
    if (o.kind == graph::OutputKind::kExit || o.kind == graph::OutputKind::kFinal) {
      out.push_back(&o);
    }
  }
  return out;
}

std::string ClassName(const graph::Graph& g, const data::Dataset& ds, int c) {
  if (c >= 0 && c < static_cast<int>(g.class_names.size())) return g.class_names[c];
  if (c >= 0 && c < static_cast<int>(ds.class_names.size())) return ds.class_names[c];
  return std::to_string(c);
}

// The one input the classifier outputs read must be an image of the dataset's shape (a router's
// feature input is not read by them).
Result<graph::TensorId> CheckInput(const graph::Graph& g, const engine::Executor& ex,
                                   const data::Dataset& ds) {
  if (ex.inputs().size() != 1) {
    return Error("the model's classifiers read {} inputs; run feeds one image", ex.inputs().size());
  }
  const graph::TensorId in = ex.inputs()[0];
  const graph::Shape& s = g.tensors[in].shape;
  graph::Shape want = {graph::kBatchDim, ds.height, ds.width, ds.channels};
  if (s != want) {
    return Error("the model's input '{}' is {} but {} images are {}", g.tensors[in].name,
                 graph::ShapeToString(s), ds.name, graph::ShapeToString(want));
  }
  HYBRID_RETURN_IF_ERROR(data::CheckNormalization(ds, g.input_mean, g.input_std));
  return in;
}

// Fills `dst` with samples [first, first + count) normalized; the rest of the batch is zero.
void FillBatch(const graph::Graph& g, const data::Dataset& ds, int64_t first, int64_t count,
               const engine::TensorView& dst) {
  std::vector<float> mean = g.input_mean.empty() ? std::vector<float>{0.f} : g.input_mean;
  std::vector<float> stddev = g.input_std.empty() ? std::vector<float>{1.f} : g.input_std;
  int64_t per = ds.image_size();
  for (int64_t i = 0; i < count; ++i) {
    data::NormalizeImage(ds, first + i, mean, stddev, dst.data + i * per);
  }
  std::fill(dst.data + count * per, dst.data + dst.size(), 0.f);
}

int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return 1;
}

int Run(const RunArgs& a) {
  auto loaded = graph::LoadModelFile(a.model);
  if (!loaded.ok()) return Fail(loaded.status());
  auto g = std::make_shared<const graph::Graph>(std::move(loaded).value());
  std::string dataset = a.dataset.empty() ? g->dataset : a.dataset;
  if (dataset.empty()) return Fail(Error("the model names no dataset: pass --dataset"));
  auto split = data::ParseSplit(a.split);
  if (!split.ok()) return Fail(split.status());
  auto ds = data::LoadDataset(dataset, a.data_dir, *split);
  if (!ds.ok()) return Fail(ds.status());
  if (a.index >= ds->count) {
    return Fail(Error("--index {} is out of range: the {} split has {} samples", a.index, a.split,
                      ds->count));
  }
  int64_t total = a.all ? ds->count : 1;
  if (a.all && a.limit > 0) total = std::min(total, a.limit);

  engine::PlanOptions options;
  options.backend = a.backend;
  options.fallback = !a.no_fallback;
  options.threads = a.threads;
  options.batch = a.all ? static_cast<int>(std::min<int64_t>(a.batch, total)) : 1;
  auto outputs = Classifiers(*g);
  // With --cloud the final classifier runs on the servers: plan the edge partition and what it
  // sends.
  const bool remote = !a.cloud.endpoints.empty();
  const std::vector<engine::WireTensor> wire = engine::CloudWire(*g);
  for (const graph::NamedOutput* o : outputs) {
    if (!remote || o->kind != graph::OutputKind::kFinal) options.outputs.push_back(o->name);
  }
  std::unique_ptr<engine::Transport> transport;
  int64_t final_classes = 0;
  if (remote) {
    options.scope = engine::Scope::kEdge;
    for (const engine::WireTensor& w : wire) {
      if (w.form != engine::WireTensor::Form::kPixels) options.outputs.push_back(w.name);
    }
    auto made = MakeCloudTransport(a.cloud, g);
    if (!made.ok()) return Fail(made.status());
    transport = std::move(made).value();
    for (const graph::NamedOutput* o : outputs) {
      if (o->kind == graph::OutputKind::kFinal) final_classes = g->tensors[o->tensor].shape.back();
    }
  }
  auto ex = engine::Executor::Create(g, options);
  if (!ex.ok()) return Fail(ex.status());
  auto image = CheckInput(*g, **ex, *ds);
  if (!image.ok()) return Fail(image.status());
  for (const engine::StepInfo& s : (*ex)->steps()) {
    if (!s.fallback_reason.empty()) {
      std::cerr << fmt::format("note: node '{}' runs on ref: {}\n", s.node, s.fallback_reason);
    }
  }
  engine::TensorView input = (*ex)->Tensor(*image);
  nlohmann::json j = {
      {"model", a.model}, {"dataset", dataset}, {"split", a.split}, {"backend", a.backend}};
  if (remote) j["cloud"] = a.cloud.endpoints;
  std::vector<float> cloud_probs(static_cast<size_t>(options.batch * final_classes));
  // Runs the edge (or the whole model) on the filled batch, and the cloud through the servers.
  const auto run_batch = [&](int64_t count) -> Status {
    HYBRID_RETURN_IF_ERROR((*ex)->Run());
    if (!remote) return Status::Ok();
    engine::CloudRequest request;
    request.count = static_cast<int>(count);
    for (const engine::WireTensor& w : wire) {
      const engine::TensorView v = w.form == engine::WireTensor::Form::kPixels
                                       ? input
                                       : (*ex)->Tensor(g->FindTensor(w.name));
      request.inputs.emplace_back(v.data, static_cast<size_t>(v.size() / options.batch * count));
    }
    engine::CloudReply reply;
    HYBRID_RETURN_IF_ERROR(transport->Infer(request, cloud_probs, &reply));
    if (!reply.answered) return Error("the cloud did not answer: {}", reply.reason);
    return Status::Ok();
  };
  // Output k's scores for sample i of the batch.
  const auto row = [&](size_t k, int64_t i) -> const float* {
    if (remote && outputs[k]->kind == graph::OutputKind::kFinal) {
      return cloud_probs.data() + i * final_classes;
    }
    const engine::TensorView v = (*ex)->Tensor(outputs[k]->tensor);
    return v.data + i * (v.size() / options.batch);
  };

  if (!a.all) {
    FillBatch(*g, *ds, a.index, 1, input);
    if (Status s = run_batch(1); !s.ok()) return Fail(s);
    int label = ds->labels[a.index];
    std::cout << fmt::format("sample {} of {} {}: label {} ({})\n", a.index, dataset, a.split,
                             label, ClassName(*g, *ds, label));
    j["index"] = a.index;
    j["label"] = label;
    for (size_t out = 0; out < outputs.size(); ++out) {
      const graph::NamedOutput& o = *outputs[out];
      const float* scores = row(out, 0);
      std::vector<int> order(static_cast<size_t>(g->tensors[o.tensor].shape.back()));
      std::iota(order.begin(), order.end(), 0);
      int k = std::min<int>(a.top, static_cast<int>(order.size()));
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int x, int y) { return scores[x] > scores[y]; });
      std::string tops;
      nlohmann::json jt = nlohmann::json::array();
      for (int i = 0; i < k; ++i) {
        tops += fmt::format("  {}={:.4f}", ClassName(*g, *ds, order[i]), scores[order[i]]);
        jt.push_back({{"class", order[i]}, {"score", scores[order[i]]}});
      }
      std::cout << fmt::format("{:<10} ({:<6}) class {} ({}){}\n", o.name, graph::ToString(o.kind),
                               order[0], ClassName(*g, *ds, order[0]), tops);
      j["outputs"][o.name] = {{"kind", graph::ToString(o.kind)}, {"class", order[0]}, {"top", jt}};
    }
  } else {
    std::vector<int64_t> correct(outputs.size(), 0);
    bool tty = ::isatty(STDERR_FILENO);
    auto start = std::chrono::steady_clock::now();
    int64_t last_report = 0;
    std::ofstream csv;
    if (!a.predictions.empty()) {
      csv.open(a.predictions);
      if (!csv) return Fail(Error("cannot write '{}'", a.predictions));
      csv << "index,label";
      for (const graph::NamedOutput* o : outputs) csv << "," << o->name;
      csv << "\n";
    }
    std::vector<int64_t> predicted(outputs.size() * options.batch);
    for (int64_t first = 0; first < total; first += options.batch) {
      int64_t count = std::min<int64_t>(options.batch, total - first);
      FillBatch(*g, *ds, first, count, input);
      if (Status s = run_batch(count); !s.ok()) return Fail(s);
      for (size_t k = 0; k < outputs.size(); ++k) {
        const int64_t classes = g->tensors[outputs[k]->tensor].shape.back();
        for (int64_t i = 0; i < count; ++i) {
          const float* scores = row(k, i);
          int64_t pred = std::max_element(scores, scores + classes) - scores;
          correct[k] += pred == ds->labels[first + i];
          predicted[i * outputs.size() + k] = pred;
        }
      }
      for (int64_t i = 0; csv.is_open() && i < count; ++i) {
        csv << first + i << "," << ds->labels[first + i];
        for (size_t k = 0; k < outputs.size(); ++k) csv << "," << predicted[i * outputs.size() + k];
        csv << "\n";
      }
      int64_t done = first + count;
      if (tty || done - last_report >= total / 10 || done == total) {
        std::cerr << fmt::format("{}{}/{} samples", tty ? "\r" : "", done, total)
                  << (tty && done < total ? "" : "\n") << std::flush;
        last_report = done;
      }
    }
    if (csv.is_open()) {
      csv.close();
      if (!csv) return Fail(Error("cannot write '{}'", a.predictions));
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << fmt::format("{} samples of {} {} on {} in {:.2f} s\n", total, dataset, a.split,
                             a.backend, seconds);
    std::cout << fmt::format("{:<12} {:<8} {:>9}\n", "output", "kind", "accuracy");
    j["samples"] = total;
    j["seconds"] = seconds;
    for (size_t k = 0; k < outputs.size(); ++k) {
      double acc = static_cast<double>(correct[k]) / static_cast<double>(total);
      std::cout << fmt::format("{:<12} {:<8} {:>8.2f}%\n", outputs[k]->name,
                               graph::ToString(outputs[k]->kind), 100.0 * acc);
      j["outputs"][outputs[k]->name] = {
          {"kind", graph::ToString(outputs[k]->kind)}, {"accuracy", acc}, {"correct", correct[k]}};
    }
  }
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    out << j.dump(2) << "\n";
    if (!out) return Fail(Error("cannot write '{}'", a.json));
  }
  return 0;
}

}  // namespace

void RegisterRun(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run",
                                 "Run a model on dataset samples: one sample's answers "
                                 "(--index) or each output's accuracy (--all).");
  auto a = std::make_shared<RunArgs>();
  cmd->add_option("MODEL", a->model, "model file (.hybrid)")->required();
  cmd->add_option("--dataset", a->dataset,
                  "fashion-mnist, cifar10 or cifar100 (default: the model's dataset)");
  cmd->add_option("--data-dir", a->data_dir,
                  "dataset directory (default for fashion-mnist: " +
                      std::string(data::kDefaultFashionMnistDir) + ")");
  cmd->add_option("--split", a->split, "test or train")
      ->check(CLI::IsMember({"test", "train"}))
      ->capture_default_str();
  auto* index = cmd->add_option("--index", a->index, "run one sample and show its answers")
                    ->check(CLI::NonNegativeNumber);
  auto* all = cmd->add_flag("--all", a->all, "run the whole split and report accuracies");
  index->excludes(all);
  cmd->add_option("--backend", a->backend,
                  "ref, onednn, xnnpack, or native (our SIMD kernels for binary layers, onednn for "
                  "the rest)")
      ->check(CLI::IsMember({"ref", "onednn", "xnnpack", "native"}))
      ->capture_default_str();
  cmd->add_flag("--no-fallback", a->no_fallback,
                "refuse nodes the backend cannot run instead of running them on ref");
  cmd->add_option("--threads", a->threads, "threads (0: one per core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "samples per run with --all")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--limit", a->limit, "with --all, only the first N samples")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--top", a->top, "scores to show per output with --index")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "also write the results as JSON to this file");
  AddCloudOptions(cmd, &a->cloud);
  cmd->add_option("--predictions", a->predictions,
                  "with --all, write each sample's class per output to this CSV file")
      ->needs(all);
  cmd->callback([&exit_code, a, index, all] {
    if (index->count() == 0 && all->count() == 0) {
      std::cerr << "error: pass --index N or --all\n";
      exit_code = 2;
      return;
    }
    exit_code = Run(*a);
  });
}

}  // namespace hybrid::tools
