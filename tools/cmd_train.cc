// `hybrid train RECIPE` (the program hybrid-train, which `hybrid train` runs so that the other
// commands do not load libtorch): trains a hybrid model, writes the model file and checks it
// against the trainer's own outputs on the engine's ref backend; or, with --refit-router, fits a
// shape-B model's router again on held-out samples.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "graph/model_file.h"
#include "tools/commands.h"
#include "tools/refit_router.h"
#include "tools/train_check.h"
#include "train/export.h"
#include "train/trainer.h"

namespace hybrid::tools {
namespace {

struct TrainArgs {
  std::string recipe, out, resume, checkpoint;
  std::string refit, router_data = "validation", router_label;
  int epochs = -1, threads = 0, stop_after = 0;
  int64_t limit = 0, router_seed = -1;
  int check_samples = 64;
};

int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return 1;
}

int RunRefit(const TrainArgs& a) {
  RefitOptions o;
  o.model = a.refit;
  o.out = a.out;
  o.data = a.router_data;
  o.label = a.router_label;
  o.epochs = a.epochs;
  o.seed = a.router_seed;
  o.threads = a.threads;
  o.log = [](const std::string& line) { std::cerr << line << std::endl; };
  auto report = RefitRouter(o);
  if (!report.ok()) return Fail(report.status());
  std::cout << fmt::format(
      "wrote {} ({} bytes): router fitted on {} samples, written scores within {:.1g}\n", a.out,
      std::filesystem::file_size(a.out), report->samples, report->max_score_error);
  return 0;
}

int RunTrain(const TrainArgs& a) {
  if (!a.refit.empty()) return RunRefit(a);
  auto recipe = train::LoadRecipe(a.recipe);
  if (!recipe.ok()) return Fail(recipe.status());
  train::TrainOptions options;
  options.epochs = a.epochs;
  options.resume = a.resume;
  options.checkpoint = a.checkpoint;
  options.train_limit = a.limit;
  options.threads = a.threads;
  options.stop_after = a.stop_after;
  options.log = [](const std::string& line) { std::cerr << line << std::endl; };
  auto trained = train::Train(*recipe, options);
  if (!trained.ok()) return Fail(trained.status());
  if (a.stop_after > 0 && static_cast<int>(trained->epoch_loss.size()) < trained->recipe.epochs) {
    std::cout << fmt::format("stopped after {} epochs; continue with --resume {}\n",
                             trained->epoch_loss.size(), a.checkpoint);
    return 0;
  }
  auto graph = train::ExportGraph(*trained);
  if (!graph.ok()) return Fail(graph.status().WithContext("exporting the model"));
  const std::string out = a.out.empty() ? recipe->name + ".hybrid" : a.out;
  if (Status s = graph::WriteModelFile(*graph, out); !s.ok()) return Fail(s);
  if (Status s = CheckExport(*trained, out, a.check_samples, 1e-4, options.log); !s.ok()) {
    return Fail(s.WithContext("checking the written model"));
  }
  std::cout << fmt::format("wrote {} ({} bytes)\n", out, std::filesystem::file_size(out));
  for (const auto& [name, acc] : trained->test_accuracy) {
    std::cout << fmt::format("  {} test accuracy {:.2f}%\n", name, 100 * acc);
  }
  return 0;
}

}  // namespace

void AddTrainCommand(CLI::App* cmd, int& exit_code) {
  auto a = std::make_shared<TrainArgs>();
  CLI::Option* recipe = cmd->add_option("recipe", a->recipe, "Recipe file (JSON)");
  CLI::Option* refit = cmd->add_option("--refit-router", a->refit,
                                       "Instead of training: fit this shape-B model's router again "
                                       "(on --router-data) and write the model to --out")
                           ->check(CLI::ExistingFile)
                           ->excludes(recipe);
  cmd->add_option("--router-data", a->router_data,
                  "With --refit-router: samples to fit on, validation (held out from training), "
                  "train or both")
      ->check(CLI::IsMember({"validation", "train", "both"}))
      ->needs(refit);
  cmd->add_option("--router-label", a->router_label,
                  "With --refit-router: the router's label, proxy, gain, soft-proxy or "
                  "soft-gain (default: the recipe's)")
      ->check(CLI::IsMember(train::RouterLabels()))
      ->needs(refit);
  cmd->add_option("--router-seed", a->router_seed,
                  "With --refit-router: seed of the router's initial weights and batch order "
                  "(default: the recipe's seed)")
      ->check(CLI::NonNegativeNumber)
      ->needs(refit);
  CLI::Option* out = cmd->add_option(
      "--out", a->out,
      "Model file to write (default: NAME.hybrid from the recipe; required with --refit-router)");
  cmd->add_option("--epochs", a->epochs,
                  "Epochs, instead of the recipe's (with --refit-router: router epochs)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--resume", a->resume, "Continue from this checkpoint")
      ->check(CLI::ExistingFile)
      ->excludes(refit);
  CLI::Option* checkpoint =
      cmd->add_option("--checkpoint", a->checkpoint,
                      "Write a checkpoint here after every epoch and router round")
          ->excludes(refit);
  cmd->add_option("--threads", a->threads, "Threads (default: every core)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", a->stop_after,
                  "Stop after this many epochs (with --checkpoint, to resume later); writes no "
                  "model")
      ->check(CLI::NonNegativeNumber)
      ->needs(checkpoint);
  cmd->add_option("--limit", a->limit, "Train on this many samples only (a quick run)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(refit);
  cmd->add_option("--check-samples", a->check_samples,
                  "Validation images on which the written model is checked")
      ->check(CLI::Range(0, 5000))
      ->excludes(refit);
  cmd->callback([a, recipe, refit, out, &exit_code] {
    if (recipe->count() == 0 && refit->count() == 0) {
      throw CLI::RequiredError("a recipe or --refit-router MODEL");
    }
    if (refit->count() > 0 && out->count() == 0) {
      throw CLI::RequiredError("--out (with --refit-router)");
    }
    exit_code = RunTrain(*a);
  });
}

}  // namespace hybrid::tools
