#include "tools/cloud_options.h"

namespace hybrid::tools {

void AddCloudOptions(CLI::App* cmd, CloudArgs* a) {
  cmd->add_option("--cloud", a->endpoints,
                  "Reach the cloud partition on these servers (HOST:PORT[,HOST:PORT...], `hybrid "
                  "serve` or a load balancer) instead of running it in this process");
  cmd->add_option("--cloud-deadline-ms", a->client.deadline_ms,
                  "Deadline of each request to the cloud; a late answer counts as none")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  cmd->add_option("--cloud-attempts", a->client.attempts,
                  "Attempts per request, moving to the next endpoint each time (0: one per "
                  "endpoint, at least 2)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_option("--cloud-token", a->client.token, "Bearer token the servers require");
  cmd->add_option("--cloud-tls-ca", a->client.tls_ca, "Use TLS, trusting this CA certificate (PEM)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cloud-tls-cert", a->client.tls_cert,
                  "Client certificate (PEM) for servers that require one")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cloud-tls-key", a->client.tls_key, "Key of the client certificate (PEM)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cloud-tls-server-name", a->client.tls_server_name,
                  "Name to expect in the servers' certificates (default: the endpoint's host)");
}

Result<std::unique_ptr<engine::Transport>> MakeCloudTransport(
    const CloudArgs& a, const std::shared_ptr<const graph::Graph>& graph) {
  net::ClientOptions o = a.client;
  HYBRID_ASSIGN_OR_RETURN(o.endpoints, net::ParseEndpoints(a.endpoints));
  HYBRID_ASSIGN_OR_RETURN(auto transport, net::GrpcTransport::Create(graph, o));
  return std::unique_ptr<engine::Transport>(std::move(transport));
}

}  // namespace hybrid::tools
