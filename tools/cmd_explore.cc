// `hybrid explore MODEL...`: design-space exploration over trained variants (split point, bit
// width) and their thresholds: the Pareto front of modeled edge energy against accuracy.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "router/energy.h"
#include "router/metrics.h"
#include "router/router.h"
#include "tools/commands.h"
#include "tools/evaluation.h"

namespace hybrid::tools {
namespace {

struct ExploreArgs {
  std::vector<std::string> models;
  std::string dataset, data_dir, router, radio = "lte", energy, json;
  int threads = 0, batch = 256, steps = 20;
  int64_t limit = 0;
};

struct Candidate {
  std::string model, variant, router;
  double target = 0, coverage = 0, accuracy = 0, energy_uj = 0;
};

int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return 1;
}

// What distinguishes a variant: its edge MACs by precision and what it sends.
std::string Describe(const ModelEval& m) {
  const char* names[graph::kNumPrecisions] = {"f32", "int8", "int4", "int2", "binary"};
  std::string s = "edge";
  for (int p = 0; p < graph::kNumPrecisions; ++p) {
    if (m.cost.edge.macs[p] > 0)
      s += fmt::format(" {:.1f}M {}", m.cost.edge.macs[p] * 1e-6, names[p]);
  }
  for (const engine::WireTensor& w : m.wire) {
    s += fmt::format(", sends {} ({:.0f} B)", engine::ToString(w.form), w.bytes);
  }
  return s;
}

int RunExplore(const ExploreArgs& a) {
  auto table = a.energy.empty()
                   ? router::ParseEnergyTable(router::DefaultEnergyTableText(), "default table")
                   : router::LoadEnergyTable(a.energy);
  if (!table.ok()) return Fail(table.status());
  int radio = -1;
  for (size_t r = 0; r < table->radios.size(); ++r) {
    if (table->radios[r].name == a.radio) radio = static_cast<int>(r);
  }
  if (a.radio != "none" && radio < 0) {
    return Fail(Error("--radio: the energy table has no radio '{}'", a.radio));
  }
  if (!a.router.empty()) {
    auto kind = router::ParseScoreKind(a.router);
    if (!kind.ok()) return Fail(kind.status());
  }
  std::vector<Candidate> all;
  for (const std::string& path : a.models) {
    EvalOptions o;
    o.dataset = a.dataset;
    o.data_dir = a.data_dir;
    o.threads = a.threads;
    o.batch = a.batch;
    o.limit = a.limit;
    o.progress = [&](const std::string& line) { std::cerr << path << ": " << line << std::endl; };
    auto m = EvaluateModel(path, o);
    if (!m.ok()) return Fail(m.status().WithContext(path));
    const std::string r = a.router.empty() ? m->routers[0] : a.router;
    if (std::find(m->routers.begin(), m->routers.end(), r) == m->routers.end()) {
      return Fail(Error("{}: the model has no {} router", path, r));
    }
    const router::Outcomes outcomes = m->test.For(r);
    for (int k = 0; k <= a.steps; ++k) {
      const double c = static_cast<double>(k) / a.steps;
      const float t = router::ThresholdForCoverage(m->validation.scores.at(r), c);
      const router::OperatingPoint p = router::Evaluate(outcomes, t, m->costs, *table);
      all.push_back({path, Describe(*m), r, c, p.coverage, p.accuracy,
                     p.compute_uj + (radio >= 0 ? p.radio_uj[radio] : 0.0)});
    }
  }
  // The front: no other point is at least as accurate for less energy.
  std::sort(all.begin(), all.end(), [](const Candidate& x, const Candidate& y) {
    return x.energy_uj != y.energy_uj ? x.energy_uj < y.energy_uj : x.accuracy > y.accuracy;
  });
  std::vector<Candidate> front;
  for (const Candidate& c : all) {
    if (front.empty() || c.accuracy > front.back().accuracy) front.push_back(c);
  }
  std::cout << fmt::format(
      "Pareto front of modeled edge energy (compute{}) against test accuracy, "
      "{} operating points of {} models\n",
      radio >= 0 ? " + " + a.radio + " radio" : "", all.size(), a.models.size());
  std::cout << fmt::format("{:>12} {:>9} {:>9}  {:<8} {:<24} {}\n", "energy uJ", "accuracy",
                           "coverage", "router", "model", "variant");
  nlohmann::json j = nlohmann::json::array();
  for (const Candidate& c : front) {
    std::cout << fmt::format("{:>12.2f} {:>8.2f}% {:>8.2f}%  {:<8} {:<24} {}\n", c.energy_uj,
                             100 * c.accuracy, 100 * c.coverage, c.router, c.model, c.variant);
    j.push_back({{"model", c.model},
                 {"variant", c.variant},
                 {"router", c.router},
                 {"target_coverage", c.target},
                 {"coverage", c.coverage},
                 {"accuracy", c.accuracy},
                 {"edge_energy_uj", c.energy_uj}});
  }
  if (!a.json.empty()) {
    std::ofstream f(a.json);
    f << nlohmann::json{{"radio", a.radio}, {"front", j}}.dump(2) << "\n";
    if (!f) return Fail(Error("cannot write '{}'", a.json));
  }
  return 0;
}

}  // namespace

void RegisterExplore(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ExploreArgs>();
  CLI::App* cmd = app.add_subcommand(
      "explore",
      "Design-space exploration: evaluate trained variants (split point, bit width) at every "
      "threshold and print the Pareto front of modeled edge energy against accuracy.");
  cmd->add_option("models", a->models, "Model files (the variants)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--dataset", a->dataset, "Dataset (default: each model's)");
  cmd->add_option("--data-dir", a->data_dir, "Directory of the dataset's files");
  cmd->add_option("--router", a->router,
                  "learned, entropy, maxprob or margin (default: learned when a model has one, "
                  "else entropy)");
  cmd->add_option("--radio", a->radio,
                  "The link whose sending energy counts (a radio of the energy table, or none)");
  cmd->add_option("--energy", a->energy, "Energy table (JSON)")->check(CLI::ExistingFile);
  cmd->add_option("--steps", a->steps, "Coverages per model: 0, 1/steps, ..., 1")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--json", a->json, "Write the front as JSON");
  cmd->add_option("--threads", a->threads, "Threads (default: every core)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", a->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--limit", a->limit, "Evaluate on the first N test samples only")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([a, &exit_code] { exit_code = RunExplore(*a); });
}

}  // namespace hybrid::tools
