// The cloud server: serves the cloud partition of one or more model files over the KServe v2 /
// Open Inference Protocol (gRPC GRPCInferenceService) with the standard grpc.health.v1 service;
// dynamic batching with a bounded queue, per-request deadlines, optional TLS and bearer token;
// Prometheus metrics and the KServe v2 REST health endpoints on an HTTP port; structured logs.
// See docs/serve.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/batcher.h"

namespace hybrid::net {

struct ServerOptions {
  std::vector<std::string> models;  // model files
  std::string host = "0.0.0.0";
  int grpc_port = 8001;  // 0: any free port
  int http_port = 8000;  // 0: any free port; -1: no HTTP endpoint
  BatcherOptions batching;
  int max_request_samples = 4096;        // samples one request may carry
  int64_t max_message_bytes = 64 << 20;  // gRPC messages either way
  std::string tls_cert, tls_key;         // PEM files: serve TLS
  std::string tls_client_ca;             // PEM file: also require client certificates it signed
  std::string token;                     // non-empty: requests need "authorization: Bearer TOKEN"
  double grace_seconds = 30;             // shutdown: how long requests in flight may take
};

class CloudServer {
 public:
  // Loads and plans every model, then listens. Errors name the model or option at fault.
  static Result<std::unique_ptr<CloudServer>> Start(const ServerOptions& options);
  ~CloudServer();

  int grpc_port() const;
  int http_port() const;  // -1 without HTTP
  // The name and version each model is served under, in the order given.
  std::vector<std::pair<std::string, std::string>> served() const;
  // Prometheus text of the server's metrics.
  std::string MetricsText() const;

  // Stops taking requests, lets those in flight finish (up to the grace period), then stops.
  void Shutdown();

  class Impl;

 private:
  explicit CloudServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hybrid::net
