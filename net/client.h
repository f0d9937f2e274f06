// The edge's side of the network transport: sends the cloud partition's inputs, in their compact
// wire form, to hybrid servers (or anything speaking the KServe v2 gRPC protocol and serving the
// same model) with a deadline per request; retries on another endpoint when one is down or slow,
// and reports the request unanswered when none answers, so that the session falls back to the
// edge's own answer. Channels reconnect by themselves.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/session.h"
#include "graph/ir.h"
#include "net/wire.h"

namespace hybrid::net {

struct ClientOptions {
  std::vector<std::string> endpoints;  // HOST:PORT of each server (or load balancer)
  int deadline_ms = 2000;              // per attempt
  int attempts = 0;                    // per request; 0: one per endpoint, at least 2
  std::string token;                   // sent as "authorization: Bearer TOKEN"
  std::string tls_ca;                  // PEM file: use TLS, trusting this CA
  std::string tls_cert, tls_key;       // PEM files: the client's certificate, if servers ask
  std::string tls_server_name;         // the name to expect in the server's certificate
  int64_t max_message_bytes = 64 << 20;
};

// Splits "host:port,host:port" and checks each part.
Result<std::vector<std::string>> ParseEndpoints(std::string_view list);

class GrpcTransport : public engine::Transport {
 public:
  // Prepares channels to every endpoint (connecting lazily) for the cloud partition of `graph`,
  // which the servers must serve under the graph's name and fingerprint.
  static Result<std::unique_ptr<GrpcTransport>> Create(
      const std::shared_ptr<const graph::Graph>& graph, const ClientOptions& options);
  ~GrpcTransport() override;

  Status Infer(const engine::CloudRequest& request, std::span<float> out,
               engine::CloudReply* reply) override;

  const std::string& model_name() const;
  const std::string& model_version() const;

  class Impl;

 private:
  explicit GrpcTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hybrid::net
