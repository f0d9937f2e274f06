#include "net/client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <charconv>
#include <chrono>

#include "base/file.h"
#include "graph/model_file.h"
#include "net/status_name.h"
#include "proto/inference.grpc.pb.h"

namespace hybrid::net {
namespace {

using Clock = std::chrono::steady_clock;

// Statuses that say the request itself is wrong: another endpoint would refuse it too.
bool Refusal(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ALREADY_EXISTS:
      return true;
    default:
      return false;
  }
}

}  // namespace

Result<std::vector<std::string>> ParseEndpoints(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string_view e = list.substr(start, end - start);
    const size_t colon = e.rfind(':');
    int port = 0;
    const bool port_ok = colon != std::string_view::npos && colon + 1 < e.size() &&
                         std::from_chars(e.data() + colon + 1, e.data() + e.size(), port).ptr ==
                             e.data() + e.size() &&
                         port > 0 && port < 65536;
    if (colon == 0 || !port_ok) {
      return Error("cloud endpoint '{}' is not HOST:PORT (port 1-65535)", e);
    }
    out.emplace_back(e);
    start = end + 1;
  }
  return out;
}

class GrpcTransport::Impl {
 public:
  ClientOptions options;
  std::shared_ptr<const graph::Graph> graph;
  std::string name, version, split, output;
  int classes = 0;
  std::vector<WireCodec> codecs;
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs;
  size_t next = 0;  // the endpoint the next request tries first
  uint64_t id = 0;
  inference::ModelInferRequest request;  // reused: its buffers keep their capacity
};

GrpcTransport::GrpcTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcTransport::~GrpcTransport() = default;

const std::string& GrpcTransport::model_name() const { return impl_->name; }
const std::string& GrpcTransport::model_version() const { return impl_->version; }

Result<std::unique_ptr<GrpcTransport>> GrpcTransport::Create(
    const std::shared_ptr<const graph::Graph>& graph, const ClientOptions& options) {
  if (options.endpoints.empty()) return Error("no cloud endpoint");
  if (options.deadline_ms < 1) return Error("the cloud deadline must be at least 1 ms");
  if (options.attempts < 0) return Error("attempts must not be negative");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.attempts == 0) {
    impl->options.attempts = std::max<int>(2, static_cast<int>(options.endpoints.size()));
  }
  impl->graph = graph;
  impl->name = graph->name.empty() ? "model" : graph->name;
  HYBRID_ASSIGN_OR_RETURN(impl->version, graph::ModelFingerprint(*graph));
  for (const engine::WireTensor& w : engine::CloudWire(*graph)) {
    impl->codecs.emplace_back(w, *graph);
    impl->split += (impl->split.empty() ? "" : ",") + w.name;
  }
  if (impl->codecs.empty()) return Error("the model has no cloud partition");
  for (const graph::NamedOutput& o : graph->outputs) {
    if (o.kind == graph::OutputKind::kFinal) {
      impl->output = o.name;
      impl->classes = static_cast<int>(graph->tensors[o.tensor].shape.back());
    }
  }
  if (impl->output.empty()) return Error("the model has no final classifier for the cloud");

  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!options.tls_ca.empty() || !options.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      HYBRID_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadTextFile(options.tls_ca, "CA certificate"));
    }
    if (!options.tls_cert.empty() || !options.tls_key.empty()) {
      if (options.tls_cert.empty() || options.tls_key.empty()) {
        return Error("a client certificate needs both --cloud-tls-cert and --cloud-tls-key");
      }
      HYBRID_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadTextFile(options.tls_cert, "certificate"));
      HYBRID_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadTextFile(options.tls_key, "key"));
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // Come back soon after a server restarts instead of gRPC's default minute-long backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  for (const std::string& endpoint : options.endpoints) {
    impl->stubs.push_back(
        inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(endpoint, creds, args)));
  }
  return std::unique_ptr<GrpcTransport>(new GrpcTransport(std::move(impl)));
}

Status GrpcTransport::Infer(const engine::CloudRequest& request, std::span<float> out,
                            engine::CloudReply* reply) {
  Impl& s = *impl_;
  *reply = engine::CloudReply{};
  if (request.inputs.size() != s.codecs.size()) {
    return Error("the cloud reads {} tensors, the request carries {}", s.codecs.size(),
                 request.inputs.size());
  }
  if (request.count < 1) return Status::Ok();
  // The request in the compact form, built once for every attempt.
  inference::ModelInferRequest& r = s.request;
  r.Clear();
  r.set_model_name(s.name);
  r.set_model_version(s.version);
  r.set_id(std::to_string(++s.id));
  (*r.mutable_parameters())["split"].set_string_param(s.split);
  for (size_t i = 0; i < s.codecs.size(); ++i) {
    const WireCodec& c = s.codecs[i];
    if (static_cast<int64_t>(request.inputs[i].size()) != c.tensor().values * request.count) {
      return Error("cloud input '{}': {} values for {} samples of {}", c.tensor().name,
                   request.inputs[i].size(), request.count, c.tensor().values);
    }
    auto* in = r.add_inputs();
    in->set_name(c.tensor().name);
    in->set_datatype(c.Datatype(c.form()));
    in->add_shape(request.count);
    for (int64_t d : c.SampleShape(c.form())) in->add_shape(d);
    (*in->mutable_parameters())["encoding"].set_string_param(std::string(EncodingName(c.form())));
    c.Encode(request.inputs[i].data(), request.count, r.add_raw_input_contents());
  }
  reply->bytes_sent = static_cast<double>(r.ByteSizeLong());
  const Clock::time_point start = Clock::now();
  std::string last;
  for (int attempt = 0; attempt < s.options.attempts; ++attempt) {
    const size_t e = (s.next + static_cast<size_t>(attempt)) % s.stubs.size();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(s.options.deadline_ms));
    if (!s.options.token.empty()) context.AddMetadata("authorization", "Bearer " + s.options.token);
    inference::ModelInferResponse response;
    const grpc::Status status = s.stubs[e]->ModelInfer(&context, r, &response);
    ++reply->attempts;
    const std::string& endpoint = s.options.endpoints[e];
    if (status.ok()) {
      // The next request starts at the following endpoint: requests spread over all of them.
      s.next = (e + 1) % s.stubs.size();
      reply->call_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      reply->bytes_received = static_cast<double>(response.ByteSizeLong());
      const auto& params = response.parameters();
      for (const char* key : {"queue_us", "compute_us"}) {
        if (auto it = params.find(key); it != params.end()) {
          reply->server_ms += static_cast<double>(it->second.int64_param()) / 1e3;
        }
      }
      // A peer that answers something else is refused, not believed.
      const size_t want = static_cast<size_t>(request.count) * s.classes * sizeof(float);
      if (response.outputs_size() != 1 || response.raw_output_contents_size() != 1 ||
          response.outputs(0).datatype() != "FP32" || response.outputs(0).shape_size() != 2 ||
          response.outputs(0).shape(0) != request.count ||
          response.outputs(0).shape(1) != s.classes ||
          response.raw_output_contents(0).size() != want) {
        return Error("the cloud at {} answered {} output(s), not [{}, {}] FP32 probabilities",
                     endpoint, response.outputs_size(), request.count, s.classes);
      }
      std::memcpy(out.data(), response.raw_output_contents(0).data(), want);
      return Status::Ok();
    }
    if (Refusal(status.error_code())) {
      return Error("the cloud at {} refused the request: {}: {}", endpoint,
                   StatusCodeName(status.error_code()), status.error_message());
    }
    last = fmt::format("{}: {}: {}", endpoint, StatusCodeName(status.error_code()),
                       status.error_message());
  }
  s.next = (s.next + 1) % s.stubs.size();
  reply->call_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  reply->answered = false;
  reply->reason = fmt::format("no answer after {} attempt(s); last {}", reply->attempts, last);
  return Status::Ok();
}

}  // namespace hybrid::net
