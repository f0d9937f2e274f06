// The subcommands of the `hybrid` program. Each Register* adds its subcommand to the app and
// returns; the callbacks run the command and set the process exit code through `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace hybrid::tools {

void RegisterInspect(CLI::App& app, int& exit_code);
void RegisterRun(CLI::App& app, int& exit_code);

}  // namespace hybrid::tools
