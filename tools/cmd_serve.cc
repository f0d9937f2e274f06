#include <signal.h>

#include <iostream>

#include "base/file.h"
#include "net/log.h"
#include "net/server.h"
#include "tools/commands.h"

namespace hybrid::tools {
namespace {

struct ServeArgs {
  net::ServerOptions server;
  std::string token_file, port_file, log_level = "info";
};

int Fail(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  return 1;
}

int Serve(ServeArgs a) {
  if (!net::SetLogLevel(a.log_level)) {
    return Fail(Error("--log-level '{}' is not debug, info, warn or error", a.log_level));
  }
  if (!a.token_file.empty()) {
    auto token = ReadTextFile(a.token_file, "token file");
    if (!token.ok()) return Fail(token.status());
    a.server.token = std::move(token).value();
    while (!a.server.token.empty() &&
           std::isspace(static_cast<unsigned char>(a.server.token.back()))) {
      a.server.token.pop_back();
    }
    if (a.server.token.empty()) return Fail(Error("the token file '{}' is empty", a.token_file));
  }
  // SIGTERM and SIGINT are taken by this thread alone: every thread the server starts inherits
  // the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = net::CloudServer::Start(a.server);
  if (!server.ok()) return Fail(server.status());
  if (!a.port_file.empty()) {
    // Written whole under another name, then renamed: a reader never sees half of it.
    const std::string tmp = a.port_file + ".tmp";
    std::ofstream out(tmp);
    out << (*server)->grpc_port() << " " << (*server)->http_port() << "\n";
    out.close();
    if (!out || std::rename(tmp.c_str(), a.port_file.c_str()) != 0) {
      return Fail(Error("cannot write the port file '{}'", a.port_file));
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  net::Log(net::LogLevel::kInfo, "signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Shutdown();
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve the cloud partition of model files over the KServe v2 gRPC protocol, with dynamic "
      "batching, Prometheus metrics and health endpoints (docs/serve.md).");
  cmd->add_option("MODEL", a->server.models, "Model files (.hybrid) whose cloud partition to serve")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--host", a->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--grpc-port", a->server.grpc_port, "gRPC port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--http-port", a->server.http_port,
                  "HTTP port for /metrics and the /v2 health endpoints (0: any free port, -1: "
                  "none)")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  cmd->add_option("--max-batch", a->server.batching.max_batch,
                  "Samples computed together at most (1: no dynamic batching)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-us", a->server.batching.max_queue_delay_us,
                  "How long a request may wait for others to join its batch")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  cmd->add_option("--max-queue", a->server.batching.max_queue,
                  "Requests that may wait per model; more get UNAVAILABLE")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--threads", a->server.batching.threads, "Threads of each worker (0: every core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--workers", a->server.batching.workers,
                  "Batches computed at once per model, each worker with its own plans")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--backend", a->server.batching.backend,
                  "Backend of the cloud partition: onednn, native, xnnpack or ref")
      ->check(CLI::IsMember({"ref", "onednn", "xnnpack", "native"}))
      ->capture_default_str();
  cmd->add_option("--max-request-samples", a->server.max_request_samples,
                  "Samples one request may carry")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--max-message-bytes", a->server.max_message_bytes,
                  "Largest gRPC message either way")
      ->check(CLI::Range(int64_t{1024}, (int64_t{1} << 31) - 1))
      ->capture_default_str();
  cmd->add_option("--tls-cert", a->server.tls_cert, "Serve TLS with this certificate (PEM)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-key", a->server.tls_key, "Key of the TLS certificate (PEM)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-client-ca", a->server.tls_client_ca,
                  "Require client certificates signed by this CA (PEM)")
      ->check(CLI::ExistingFile);
  auto* token = cmd->add_option("--token", a->server.token,
                                "Require 'authorization: Bearer TOKEN' on every gRPC request");
  cmd->add_option("--token-file", a->token_file,
                  "Read the token from this file (keeps it out of the process list)")
      ->check(CLI::ExistingFile)
      ->excludes(token);
  cmd->add_option("--grace-seconds", a->server.grace_seconds,
                  "On SIGTERM, how long requests in flight may take to finish")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--log-level", a->log_level, "debug (every request), info, warn or error")
      ->capture_default_str();
  cmd->add_option("--port-file", a->port_file,
                  "Once listening, write 'GRPC_PORT HTTP_PORT' to this file");
  cmd->callback([a, &exit_code] { exit_code = Serve(*a); });
}

}  // namespace hybrid::tools
