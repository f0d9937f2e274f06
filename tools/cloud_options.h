// The options of the commands that reach a cloud over the network (`hybrid run --cloud`,
// `hybrid eval --cloud`): endpoints, deadline, retries, TLS and token.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "base/status.h"
#include "engine/session.h"
#include "graph/ir.h"
#include "net/client.h"

namespace hybrid::tools {

struct CloudArgs {
  std::string endpoints;  // empty: the cloud runs in this process
  net::ClientOptions client;
};

// Adds --cloud and the --cloud-* options to `cmd`.
void AddCloudOptions(CLI::App* cmd, CloudArgs* args);

// A transport to the endpoints of `args` for `graph`.
Result<std::unique_ptr<engine::Transport>> MakeCloudTransport(
    const CloudArgs& args, const std::shared_ptr<const graph::Graph>& graph);

}  // namespace hybrid::tools
