// `hybrid`: inspect and run split edge/cloud models.
#include <limits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "tools/commands.h"

namespace {

int Main(int argc, char** argv) {
  CLI::App app{
      "hybrid: an inference engine for neural networks split between an edge device and the "
      "cloud.\nRun 'hybrid COMMAND --help' for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", HYBRID_VERSION);
  int exit_code = 0;
  hybrid::tools::RegisterInspect(app, exit_code);
  hybrid::tools::RegisterRun(app, exit_code);
  hybrid::tools::RegisterEval(app, exit_code);
  hybrid::tools::RegisterExplore(app, exit_code);
  hybrid::tools::RegisterServe(app, exit_code);
  // Listed here for --help; main hands `hybrid train ...` to hybrid-train before parsing.
  app.add_subcommand("train", std::string(hybrid::tools::kTrainDescription) +
                                  " Run 'hybrid train --help' for its options.")
      ->allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}

}  // namespace

// oneDNN's OpenMP threads spin for a while after each primitive; on a machine with few cores they
// then compete with the engine's own worker threads (measured on 2 cores: `run --all` on the
// native backend 4.5 s with spinning, 1.6 s without). libgomp reads its wait policy from the
// environment when it loads, before main, so the program sets it and starts itself again, once,
// unless the user chose a policy.
void PreferPassiveOpenMpThreads(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Not re-executed (no /proc): carry on with the default policy.
}

// `hybrid train ...` runs hybrid-train from the same directory, which alone links libtorch.
void HandOffTraining(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "train") return;
  std::string self(PATH_MAX, '\0');
  const ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
  std::string program = "hybrid-train";
  if (n > 0) {
    self.resize(static_cast<size_t>(n));
    program = self.substr(0, self.rfind('/') + 1) + "hybrid-train";
  }
  std::vector<char*> args = {program.data()};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(program.c_str(), args.data());
  std::cerr << "error: cannot run " << program << " (hybrid was built without the trainer, or it "
            << "was not installed beside hybrid)\n";
  std::exit(1);
}

int main(int argc, char** argv) {
  PreferPassiveOpenMpThreads(argv);
  HandOffTraining(argc, argv);
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    // Errors are values throughout; this only catches what a library throws (e.g. bad_alloc).
    std::cerr << "error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "error: unknown exception\n";
  }
  return 1;
}
