// `hybrid`: inspect and run split edge/cloud models.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>

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

int main(int argc, char** argv) {
  PreferPassiveOpenMpThreads(argv);
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
