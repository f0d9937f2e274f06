// `hybrid eval MODEL`: the split-execution evaluation of a model on a dataset (docs/eval.md).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/session.h"
#include "router/energy.h"
#include "router/metrics.h"
#include "router/router.h"
#include "tools/cloud_options.h"
#include "tools/commands.h"
#include "tools/evaluation.h"

namespace hybrid::tools {
namespace {

struct EvalArgs {
  std::string model, dataset, data_dir, coverage = "0.5,0.7,0.8,0.9", router, json, plot, energy,
                                        exit, backend = "native", cloud_backend = "onednn";
  int threads = 0, batch = 256, latency_samples = 200;
  CloudArgs cloud;
  int64_t limit = 0;
};

int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return 1;
}

Result<std::vector<double>> ParseCoverages(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end == nullptr || *end != '\0' || !(v >= 0 && v <= 1)) {
      return Error("--coverage: '{}' is not a coverage in [0, 1]", item);
    }
    out.push_back(v);
  }
  if (out.empty()) return Error("--coverage: no coverage given");
  return out;
}

struct Percentiles {
  double p50 = NAN, p99 = NAN;
};

Percentiles Of(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[static_cast<size_t>(std::ceil(q * v.size())) - 1]; };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  return p;
}

struct Latency {
  Percentiles edge, cloud, end_to_end;
};

// Latency of single inputs through a hybrid session (edge on the native backend, the cloud in
// this process) at `threshold`, over the first `count` test images.
Result<Latency> MeasureLatency(engine::HybridSession& session, const data::Dataset& test,
                               float threshold, int count) {
  session.set_threshold(threshold);
  std::vector<double> edge, cloud, total;
  count = static_cast<int>(std::min<int64_t>(count, test.count));
  for (int i = 0; i < count; ++i) {
    HYBRID_ASSIGN_OR_RETURN(
        auto answers,
        session.Classify(std::span<const uint8_t>(test.image(i), test.image_size()), 1));
    const engine::Answer& a = answers[0];
    edge.push_back(a.edge_ms);
    if (a.where == router::Decision::kCloud) cloud.push_back(a.cloud_ms);
    total.push_back(a.total_ms);
  }
  return Latency{Of(edge), Of(cloud), Of(total)};
}

std::string Ms(double v) { return std::isnan(v) ? "-" : fmt::format("{:.2f}", v); }

nlohmann::json JsonPercentiles(const Percentiles& p) {
  nlohmann::json j;
  j["p50"] = std::isnan(p.p50) ? nlohmann::json() : nlohmann::json(p.p50);
  j["p99"] = std::isnan(p.p99) ? nlohmann::json() : nlohmann::json(p.p99);
  return j;
}

const char* kPrecisionNames[graph::kNumPrecisions] = {"f32", "int8", "int4", "int2", "binary"};

nlohmann::json JsonMacs(const router::OperatingPoint& p) {
  nlohmann::json j = nlohmann::json::object();
  for (int k = 0; k < graph::kNumPrecisions; ++k) j[kPrecisionNames[k]] = p.macs[k];
  return j;
}

nlohmann::json JsonEnergy(const router::OperatingPoint& p, const router::EnergyTable& table) {
  nlohmann::json j;
  j["compute"] = p.compute_uj;
  for (size_t r = 0; r < table.radios.size(); ++r) {
    j[table.radios[r].name] = p.compute_uj + p.radio_uj[r];
  }
  return j;
}

double TotalMacs(const router::OperatingPoint& p) {
  double t = 0;
  for (double m : p.macs) t += m;
  return t;
}

// The threshold of `router` for a target coverage: calibrated on the validation split, except for
// the oracle, which knows the test labels and takes its coverage on the test split.
float Calibrate(const ModelEval& m, const std::string& router, double coverage) {
  if (router == "oracle") return router::ThresholdForCoverage(m.test.For("oracle").score, coverage);
  return router::ThresholdForCoverage(m.validation.scores.at(router), coverage);
}

// One SVG or PNG (by extension) with accuracy against coverage per router and edge energy
// (compute plus the first radio) against accuracy, drawn by gnuplot.
Status Plot(const std::string& path, const std::string& title, const nlohmann::json& sweep,
            const std::vector<std::string>& routers, const std::string& radio) {
  const std::string ext = std::filesystem::path(path).extension().string();
  std::string terminal;
  if (ext == ".svg") {
    terminal = "svg size 1200,480 dynamic background rgb 'white' noenhanced";
  } else if (ext == ".png") {
    terminal = "pngcairo size 1200,480 noenhanced";
  } else {
    return Error("--plot: '{}' must end in .svg or .png", path);
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("hybrid-plot-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string plots_acc, plots_energy;
  for (const std::string& r : routers) {
    const std::string data = (dir / (r + ".dat")).string();
    std::ofstream f(data);
    for (const auto& p : sweep) {
      if (p["router"] != r) continue;
      f << fmt::format("{} {} {} {}\n", p["coverage"].get<double>(),
                       100 * p["accuracy"].get<double>(), p["edge_energy_uj"][radio].get<double>(),
                       p["target_coverage"].get<double>());
    }
    plots_acc += fmt::format("{}'{}' using 1:2 with linespoints title '{}'",
                             plots_acc.empty() ? "" : ", ", data, r);
    plots_energy += fmt::format("{}'{}' using 2:3 with linespoints title '{}'",
                                plots_energy.empty() ? "" : ", ", data, r);
  }
  const std::string script = (dir / "plot.gp").string();
  std::ofstream(script) << fmt::format(
      "set terminal {}\nset output '{}'\nset multiplot layout 1,2 title \"{}\"\n"
      "set grid\nset key bottom left\nset xlabel 'coverage (share answered at the edge)'\n"
      "set ylabel 'hybrid accuracy (%)'\nplot {}\n"
      "set key top left\nset xlabel 'hybrid accuracy (%)'\n"
      "set ylabel 'modeled edge energy per input, compute + {} radio (uJ)'\nset logscale y\n"
      "plot {}\nunset multiplot\n",
      terminal, path, title, plots_acc, radio, plots_energy);
  const int rc = std::system(fmt::format("gnuplot '{}' 2>&1", script).c_str());
  std::filesystem::remove_all(dir);
  if (rc != 0) {
    return Error("gnuplot failed (exit {}) writing '{}'; is it installed (Debian: gnuplot-nox)?",
                 rc, path);
  }
  return Status::Ok();
}

int RunEval(const EvalArgs& a) {
  auto coverages = ParseCoverages(a.coverage);
  if (!coverages.ok()) return Fail(coverages.status());
  if (!a.router.empty() && a.router != "oracle") {
    auto kind = router::ParseScoreKind(a.router);
    if (!kind.ok()) return Fail(kind.status());
  }
  auto table = a.energy.empty()
                   ? router::ParseEnergyTable(router::DefaultEnergyTableText(), "default table")
                   : router::LoadEnergyTable(a.energy);
  if (!table.ok()) return Fail(table.status());
  if (!a.plot.empty()) {
    const std::string ext = std::filesystem::path(a.plot).extension().string();
    if (ext != ".svg" && ext != ".png") {
      return Fail(Error("--plot: '{}' must end in .svg or .png", a.plot));
    }
  }
  EvalOptions o;
  o.dataset = a.dataset;
  o.data_dir = a.data_dir;
  o.edge_backend = a.backend;
  o.cloud_backend = a.cloud_backend;
  o.exit = a.exit;
  o.threads = a.threads;
  o.batch = a.batch;
  o.limit = a.limit;
  o.progress = [](const std::string& line) { std::cerr << line << std::endl; };
  if (!a.cloud.endpoints.empty()) {
    o.make_transport = [&a](std::shared_ptr<const graph::Graph> g, int) {
      return MakeCloudTransport(a.cloud, std::move(g));
    };
  }
  auto evaluated = EvaluateModel(a.model, o);
  if (!evaluated.ok()) return Fail(evaluated.status());
  const ModelEval& m = *evaluated;
  const std::string chosen = a.router.empty() ? m.routers[0] : a.router;
  if (chosen != "oracle" &&
      std::find(m.routers.begin(), m.routers.end(), chosen) == m.routers.end()) {
    return Fail(
        Error("the model has no {} router (it offers: {})", chosen, fmt::join(m.routers, ", ")));
  }
  const double edge_only = router::Mean(m.test.edge_right);
  const double cloud_only = router::Mean(m.test.cloud_right);
  const double fp32_uj = Fp32EdgeEnergyUj(m, *table);
  const std::string dataset = a.dataset.empty() ? m.graph->dataset : a.dataset;

  // The session that measures latency: the router at its own score, the edge on `backend`.
  engine::SessionOptions so;
  so.edge_backend = a.backend;
  so.cloud_backend = a.cloud_backend;
  so.threads = a.threads;
  so.exit = m.exit;
  so.router = chosen == "oracle" ? m.routers[0] : chosen;
  std::unique_ptr<engine::Transport> transport;
  if (!a.cloud.endpoints.empty()) {
    auto made = MakeCloudTransport(a.cloud, m.graph);
    if (!made.ok()) return Fail(made.status());
    transport = std::move(made).value();
  }
  auto session = engine::HybridSession::Create(m.graph, so, std::move(transport));
  if (!session.ok()) return Fail(session.status());

  std::cout << fmt::format(
      "{} on {} test ({} samples; thresholds calibrated on {} held-out training samples)\n",
      a.model, dataset, m.test.labels.size(), m.validation.labels.size());
  std::cout << fmt::format(
      "edge-only accuracy {:.2f}%   cloud-only accuracy {:.2f}%   fp32 edge energy {:.1f} uJ   "
      "router {}   sent per input: {}\n",
      100 * edge_only, 100 * cloud_only, fp32_uj, chosen, [&] {
        std::string s;
        for (const engine::WireTensor& w : m.wire) {
          s += fmt::format("{}{} as {} ({:.0f} bytes)", s.empty() ? "" : ", ", w.name,
                           engine::ToString(w.form), w.bytes);
        }
        return s.empty() ? std::string("nothing") : s;
      }());
  const TransportTotals& t = m.transport;
  nlohmann::json cloud_json = {
      {"where", a.cloud.endpoints.empty() ? "in-process" : a.cloud.endpoints},
      {"requests", t.requests},
      {"samples", t.samples},
      {"degraded_samples", t.degraded}};
  if (!a.cloud.endpoints.empty() && t.requests > 0) {
    // Measured on the wire: what one input cost in bytes, and the call time the server did not
    // spend queueing and computing.
    const double per_input = 1.0 / static_cast<double>(std::max<int64_t>(t.samples, 1));
    const double network_ms = std::max(0.0, t.call_ms - t.server_ms);
    std::cout << fmt::format(
        "cloud at {}: {} requests ({} attempts) for {} inputs; per input {:.0f} bytes sent, {:.0f} "
        "received, {:.3f} ms on the network (calls {:.1f} ms - server {:.1f} ms per request); "
        "degraded {} inputs (the edge answered)\n",
        a.cloud.endpoints, t.requests, t.attempts, t.samples, t.bytes_sent * per_input,
        t.bytes_received * per_input, network_ms * per_input,
        t.call_ms / static_cast<double>(t.requests), t.server_ms / static_cast<double>(t.requests),
        t.degraded);
    cloud_json["attempts"] = t.attempts;
    cloud_json["bytes_sent_per_input"] = t.bytes_sent * per_input;
    cloud_json["bytes_received_per_input"] = t.bytes_received * per_input;
    cloud_json["network_ms_per_input"] = network_ms * per_input;
    cloud_json["call_ms_per_request"] = t.call_ms / static_cast<double>(t.requests);
    cloud_json["server_ms_per_request"] = t.server_ms / static_cast<double>(t.requests);
  } else if (t.degraded > 0) {
    std::cout << fmt::format("degraded {} inputs (the edge answered)\n", t.degraded);
  }
  std::string radios;
  for (const auto& r : table->radios) radios += fmt::format(" {:>9}", "+" + r.name);
  std::cout << fmt::format("{:>6} {:>8} {:>8} {:>8} {:>10} {:>11} {}  {:>8} {:>13} {:>13} {:>13}\n",
                           "target", "coverage", "accuracy", "oracle", "MMAC/input", "compute uJ",
                           radios, "bytes", "edge p50/p99", "cloud p50/p99", "e2e p50/p99");

  nlohmann::json j;
  j["model"] = a.model;
  j["dataset"] = dataset;
  j["test_samples"] = m.test.labels.size();
  j["edge_only_accuracy"] = edge_only;
  j["cloud_only_accuracy"] = cloud_only;
  j["fp32_edge_energy_uj"] = fp32_uj;
  j["router"] = chosen;
  j["cloud"] = cloud_json;
  j["cloud_predictions"] = m.test.cloud_label;
  j["points"] = nlohmann::json::array();
  for (double c : *coverages) {
    const float threshold = Calibrate(m, chosen, c);
    const router::OperatingPoint p =
        router::Evaluate(m.test.For(chosen), threshold, m.costs, *table);
    const double oracle = router::OracleAccuracy(m.test.edge_right, m.test.cloud_right, p.coverage);
    Latency lat;
    if (chosen != "oracle" && a.latency_samples > 0) {
      auto measured = MeasureLatency(**session, m.test_set, threshold, a.latency_samples);
      if (!measured.ok()) return Fail(measured.status());
      lat = *measured;
    }
    std::string radio_cells;
    for (double r : p.radio_uj) radio_cells += fmt::format(" {:>9.1f}", p.compute_uj + r);
    std::cout << fmt::format(
        "{:>6.2f} {:>7.2f}% {:>7.2f}% {:>7.2f}% {:>10.2f} {:>11.2f} {}  {:>8.0f} {:>13} {:>13} "
        "{:>13}\n",
        c, 100 * p.coverage, 100 * p.accuracy, 100 * oracle, TotalMacs(p) * 1e-6, p.compute_uj,
        radio_cells, p.bytes_sent, Ms(lat.edge.p50) + "/" + Ms(lat.edge.p99),
        Ms(lat.cloud.p50) + "/" + Ms(lat.cloud.p99),
        Ms(lat.end_to_end.p50) + "/" + Ms(lat.end_to_end.p99));
    nlohmann::json pj;
    pj["router"] = chosen;
    pj["target_coverage"] = c;
    pj["threshold"] = threshold;
    pj["coverage"] = p.coverage;
    pj["accuracy"] = p.accuracy;
    pj["oracle_accuracy"] = oracle;
    pj["macs"] = JsonMacs(p);
    pj["edge_energy_uj"] = JsonEnergy(p, *table);
    pj["bytes_sent"] = p.bytes_sent;
    pj["latency_ms"] = {{"edge", JsonPercentiles(lat.edge)},
                        {"cloud", JsonPercentiles(lat.cloud)},
                        {"end_to_end", JsonPercentiles(lat.end_to_end)}};
    j["points"].push_back(pj);
  }
  std::cout << fmt::format(
      "edge energy: compute of the edge partition; +radio: with the energy of "
      "sending what the cloud reads over that link ({} µJ fp32 reference "
      "= {:.1f}x the compute at any coverage)\n",
      fmt::format("{:.1f}", fp32_uj),
      fp32_uj / std::max(1e-12, router::ComputeEnergyUj(m.costs.edge, *table)));

  // The sweep: every router and the oracle from coverage 0 to 1.
  std::vector<std::string> sweep_routers = m.routers;
  sweep_routers.push_back("oracle");
  nlohmann::json sweep = nlohmann::json::array();
  for (const std::string& r : sweep_routers) {
    const router::Outcomes outcomes = m.test.For(r);
    for (int k = 0; k <= 20; ++k) {
      const double c = k / 20.0;
      const router::OperatingPoint p =
          router::Evaluate(outcomes, Calibrate(m, r, c), m.costs, *table);
      sweep.push_back({{"router", r},
                       {"target_coverage", c},
                       {"coverage", p.coverage},
                       {"accuracy", p.accuracy},
                       {"edge_energy_uj", JsonEnergy(p, *table)}});
    }
  }
  j["sweep"] = sweep;
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << j.dump(2) << "\n";
    if (!f) return Fail(Error("cannot write '{}'", a.json));
  }
  if (!a.plot.empty()) {
    const std::string radio = table->radios.empty() ? "compute" : table->radios[0].name;
    if (Status s = Plot(a.plot, fmt::format("{} on {} test", m.graph->name, dataset), sweep,
                        sweep_routers, radio);
        !s.ok()) {
      return Fail(s);
    }
    std::cout << "wrote " << a.plot << "\n";
  }
  return 0;
}

}  // namespace

void RegisterEval(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd =
      app.add_subcommand("eval",
                         "Split-execution evaluation: per operating point the coverage, hybrid "
                         "accuracy, MACs, modeled "
                         "edge energy, bytes sent and measured latency (docs/eval.md).");
  cmd->add_option("model", a->model, "Model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--dataset", a->dataset, "Dataset (default: the model's)");
  cmd->add_option("--data-dir", a->data_dir, "Directory of the dataset's files");
  cmd->add_option("--coverage", a->coverage,
                  "Target coverages, comma-separated: shares of inputs to answer at the edge");
  cmd->add_option("--router", a->router,
                  "learned, entropy, maxprob, margin or oracle (default: learned when the model "
                  "has one, else entropy)");
  cmd->add_option("--json", a->json, "Write the results as JSON (docs/eval.md)");
  cmd->add_option("--plot", a->plot,
                  "Plot accuracy against coverage and energy against accuracy (.svg or .png)");
  cmd->add_option("--energy", a->energy,
                  "Energy table (JSON; default: the built-in models/energy-45nm.json)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--exit", a->exit,
                  "The output that decides at the edge (default: the last exit)");
  cmd->add_option("--backend", a->backend, "Backend of the edge partition (default: native)");
  cmd->add_option("--cloud-backend", a->cloud_backend,
                  "Backend of the cloud partition (default: onednn)");
  cmd->add_option("--threads", a->threads, "Threads (default: every core)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", a->batch, "Batch size of the accuracy runs")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--limit", a->limit, "Evaluate on the first N test samples only")
      ->check(CLI::NonNegativeNumber);
  AddCloudOptions(cmd, &a->cloud);
  cmd->add_option("--latency-samples", a->latency_samples,
                  "Inputs timed one by one per operating point (0: no timing)")
      ->check(CLI::Range(0, 100000));
  cmd->callback([a, &exit_code] { exit_code = RunEval(*a); });
}

}  // namespace hybrid::tools
