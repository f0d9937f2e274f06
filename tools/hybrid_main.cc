// `hybrid`: inspect and run split edge/cloud models.
#include <CLI/CLI.hpp>
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

int main(int argc, char** argv) {
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
