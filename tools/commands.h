// The subcommands of the `hybrid` program. Each Register* adds its subcommand to the app and
// returns; the callbacks run the command and set the process exit code through `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace hybrid::tools {

void RegisterInspect(CLI::App& app, int& exit_code);
void RegisterRun(CLI::App& app, int& exit_code);
void RegisterEval(CLI::App& app, int& exit_code);
void RegisterExplore(CLI::App& app, int& exit_code);
void RegisterServe(CLI::App& app, int& exit_code);
// The options and callback of `hybrid train` on `cmd`: the top-level app of hybrid-train.
void AddTrainCommand(CLI::App* cmd, int& exit_code);
inline constexpr const char* kTrainDescription =
    "Train a hybrid model from a recipe (docs/train.md), write the model file and check it on the "
    "engine's ref backend against the trainer's outputs; or refit a shape-B model's router "
    "(--refit-router).";

}  // namespace hybrid::tools
