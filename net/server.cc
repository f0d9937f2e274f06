#include "net/server.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/file.h"
#include "graph/model_file.h"
#include "net/log.h"
#include "net/metrics.h"
#include "net/status_name.h"
#include "net/wire.h"
#include "proto/inference.grpc.pb.h"

#ifndef HYBRID_VERSION
#define HYBRID_VERSION "0"
#endif

namespace hybrid::net {
namespace {

using inference::GRPCInferenceService;

constexpr const char* kServiceName = "inference.GRPCInferenceService";

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// One model file served: its cloud partition, how its inputs travel, and its batcher.
struct ServedModel {
  std::string path, name, version, split, output;
  std::shared_ptr<const graph::Graph> graph;
  std::vector<WireCodec> codecs;  // per cloud input, in the batcher's order
  int classes = 0;
  std::unique_ptr<Batcher> batcher;
  Labels labels;
};

}  // namespace

class CloudServer::Impl final : public GRPCInferenceService::Service {
 public:
  ServerOptions options;
  std::vector<std::unique_ptr<ServedModel>> models;
  Metrics metrics;
  std::unique_ptr<grpc::Server> grpc_server;
  int grpc_port = 0, http_port = -1;
  httplib::Server http;
  std::thread http_thread;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopped{false};

  void DeclareMetrics() {
    metrics.DeclareCounter("hybrid_requests_total", "ModelInfer requests received");
    metrics.DeclareCounter("hybrid_request_success_total", "ModelInfer requests answered");
    metrics.DeclareCounter("hybrid_request_failure_total",
                           "ModelInfer requests refused or failed, by gRPC status");
    metrics.DeclareCounter("hybrid_samples_total", "Samples computed");
    metrics.DeclareHistogram("hybrid_request_seconds", "Time from receiving to answering",
                             {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2});
    metrics.DeclareHistogram("hybrid_queue_seconds", "Time a request waited for its batch",
                             {0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5});
    metrics.DeclareHistogram("hybrid_compute_seconds", "Time computing one batch",
                             {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1});
    metrics.DeclareHistogram("hybrid_batch_size", "Samples per computed batch",
                             {1, 2, 4, 8, 16, 32, 64, 128, 256});
    metrics.DeclareGauge("hybrid_queue_requests", "Requests waiting for a batch");
  }

  Status Load(const std::string& path) {
    auto m = std::make_unique<ServedModel>();
    m->path = path;
    HYBRID_ASSIGN_OR_RETURN(graph::Graph g, graph::LoadModelFile(path));
    m->graph = std::make_shared<const graph::Graph>(std::move(g));
    HYBRID_ASSIGN_OR_RETURN(m->version, graph::ModelFingerprint(*m->graph));
    m->name = m->graph->name.empty() ? "model" : m->graph->name;
    for (const auto& other : models) {
      if (other->name == m->name && other->version == m->version) {
        return Error("'{}' is the same model as '{}' ({} version {})", path, other->path, m->name,
                     m->version);
      }
    }
    m->labels = {{"model", m->name}, {"version", m->version}};
    ServedModel* raw = m.get();
    HYBRID_ASSIGN_OR_RETURN(
        m->batcher, Batcher::Create(m->graph, options.batching, [this, raw](const BatchReport& r) {
          metrics.Observe("hybrid_compute_seconds", raw->labels, r.compute_seconds);
          metrics.Observe("hybrid_batch_size", raw->labels, r.samples);
          metrics.Add("hybrid_samples_total", raw->labels, r.samples);
          metrics.Set("hybrid_queue_requests", raw->labels, raw->batcher->queued());
        }));
    for (const engine::WireTensor& w : engine::CloudWire(*m->graph)) {
      m->codecs.emplace_back(w, *m->graph);
      m->split += (m->split.empty() ? "" : ",") + w.name;
    }
    if (m->codecs.size() != m->batcher->input_names().size()) {
      return Error("'{}': the cloud's inputs and their wire forms disagree", path);
    }
    for (const graph::NamedOutput& o : m->graph->outputs) {
      if (o.kind == graph::OutputKind::kFinal) m->output = o.name;
    }
    m->classes = m->batcher->classes();
    Log(LogLevel::kInfo, "model_loaded",
        {{"path", path},
         {"model", m->name},
         {"version", m->version},
         {"split", m->split},
         {"inputs", m->codecs.size()},
         {"classes", m->classes}});
    models.push_back(std::move(m));
    return Status::Ok();
  }

  // The model a request names; version "" picks the name's only version.
  Result<ServedModel*> Find(const std::string& name, const std::string& version) {
    std::vector<ServedModel*> named;
    for (const auto& m : models) {
      if (m->name == name) named.push_back(m.get());
    }
    if (named.empty()) {
      std::string names;
      for (const auto& m : models) names += (names.empty() ? "" : ", ") + m->name;
      return Error("unknown model '{}' (this server serves {})", name, names);
    }
    if (version.empty()) {
      if (named.size() == 1) return named[0];
      return Error("model '{}' has {} versions here: name one", name, named.size());
    }
    for (ServedModel* m : named) {
      if (m->version == version) return m;
    }
    std::string versions;
    for (ServedModel* m : named) versions += (versions.empty() ? "" : ", ") + m->version;
    return Error("model '{}' has no version '{}' here (it has {})", name, version, versions);
  }

  grpc::Status Authenticate(const grpc::ServerContext* context) const {
    if (options.token.empty()) return grpc::Status::OK;
    const auto& md = context->client_metadata();
    const auto it = md.find("authorization");
    const std::string want = "Bearer " + options.token;
    bool same = it != md.end() && it->second.size() == want.size();
    if (same) {  // in constant time
      unsigned diff = 0;
      const char* got = it->second.data();
      for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned>(got[i] ^ want[i]);
      same = diff == 0;
    }
    if (!same) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          it == md.end() ? "missing authorization: Bearer token" : "invalid bearer token");
    }
    return grpc::Status::OK;
  }

  grpc::Status ServerLive(grpc::ServerContext* context, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    if (auto s = Authenticate(context); !s.ok()) return s;
    response->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext* context, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    if (auto s = Authenticate(context); !s.ok()) return s;
    response->set_ready(ready.load());
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext* context, const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override {
    if (auto s = Authenticate(context); !s.ok()) return s;
    response->set_ready(ready.load() && Find(request->name(), request->version()).ok());
    return grpc::Status::OK;
  }

  nlohmann::json ServerMetadataJson() const {
    return {
        {"name", "hybrid"}, {"version", HYBRID_VERSION}, {"extensions", nlohmann::json::array()}};
  }

  grpc::Status ServerMetadata(grpc::ServerContext* context, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* response) override {
    if (auto s = Authenticate(context); !s.ok()) return s;
    response->set_name("hybrid");
    response->set_version(HYBRID_VERSION);
    return grpc::Status::OK;
  }

  void FillMetadata(const ServedModel& m, inference::ModelMetadataResponse* response) const {
    response->set_name(m.name);
    for (const auto& other : models) {
      if (other->name == m.name) response->add_versions(other->version);
    }
    response->set_platform("hybrid");
    for (const WireCodec& c : m.codecs) {
      auto* t = response->add_inputs();
      t->set_name(c.tensor().name);
      t->set_datatype(c.Datatype(c.form()));
      t->add_shape(-1);
      for (int64_t d : c.SampleShape(c.form())) t->add_shape(d);
    }
    auto* out = response->add_outputs();
    out->set_name(m.output);
    out->set_datatype("FP32");
    out->add_shape(-1);
    out->add_shape(m.classes);
  }

  grpc::Status ModelMetadata(grpc::ServerContext* context,
                             const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    if (auto s = Authenticate(context); !s.ok()) return s;
    auto m = Find(request->name(), request->version());
    if (!m.ok()) return grpc::Status(grpc::StatusCode::NOT_FOUND, m.message());
    FillMetadata(**m, response);
    return grpc::Status::OK;
  }

  // Checks a request against its model and decodes its inputs into a job.
  grpc::Status Prepare(const ServedModel& m, const inference::ModelInferRequest& request,
                       std::shared_ptr<Job>* job) const {
    if (auto it = request.parameters().find("split"); it != request.parameters().end()) {
      if (it->second.string_param() != m.split) {
        return Invalid(fmt::format("split '{}' does not match the model's '{}'",
                                   it->second.string_param(), m.split));
      }
    }
    if (request.inputs_size() != static_cast<int>(m.codecs.size())) {
      return Invalid(fmt::format("the model's cloud reads {} input(s) ({}), the request has {}",
                                 m.codecs.size(), m.split, request.inputs_size()));
    }
    if (request.raw_input_contents_size() != request.inputs_size()) {
      return Invalid(fmt::format("{} inputs but {} raw_input_contents: send every input raw",
                                 request.inputs_size(), request.raw_input_contents_size()));
    }
    for (const auto& out : request.outputs()) {
      if (out.name() != m.output) {
        return Invalid(
            fmt::format("unknown output '{}' (the model answers '{}')", out.name(), m.output));
      }
    }
    int64_t count = -1;
    std::vector<std::vector<float>> inputs(m.codecs.size());
    std::vector<bool> seen(m.codecs.size(), false);
    for (int k = 0; k < request.inputs_size(); ++k) {
      const auto& in = request.inputs(k);
      const auto at = std::find_if(m.codecs.begin(), m.codecs.end(), [&](const WireCodec& c) {
        return c.tensor().name == in.name();
      });
      if (at == m.codecs.end()) {
        return Invalid(
            fmt::format("unknown input '{}' (the model's cloud reads {})", in.name(), m.split));
      }
      const size_t i = static_cast<size_t>(at - m.codecs.begin());
      if (seen[i]) return Invalid(fmt::format("input '{}' appears twice", in.name()));
      seen[i] = true;
      const WireCodec& c = *at;
      if (in.has_contents()) {
        return Invalid(fmt::format("input '{}': send raw_input_contents, not contents", in.name()));
      }
      Form form = Form::kF32;
      if (auto e = in.parameters().find("encoding"); e != in.parameters().end()) {
        auto parsed = ParseEncoding(e->second.string_param());
        if (!parsed.ok())
          return Invalid(fmt::format("input '{}': {}", in.name(), parsed.message()));
        form = *parsed;
      }
      if (form != Form::kF32 && form != c.form()) {
        return Invalid(fmt::format("input '{}': encoding {} but the model takes {} (or f32)",
                                   in.name(), EncodingName(form), EncodingName(c.form())));
      }
      if (in.datatype() != c.Datatype(form)) {
        return Invalid(fmt::format("input '{}': datatype {} but {} travels as {}", in.name(),
                                   in.datatype(), EncodingName(form), c.Datatype(form)));
      }
      const std::vector<int64_t> sample = c.SampleShape(form);
      std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
      std::vector<int64_t> want = sample;
      want.insert(want.begin(), shape.empty() ? -1 : shape[0]);
      if (shape != want || shape[0] < 1) {
        std::string expected = "[N";
        for (int64_t d : sample) expected += fmt::format(", {}", d);
        return Invalid(fmt::format("input '{}': shape {} but the model takes {}] with N >= 1",
                                   in.name(), fmt::join(shape, ", "), expected));
      }
      if (shape[0] > options.max_request_samples) {
        return Invalid(fmt::format("input '{}': {} samples, more than the {} a request may carry",
                                   in.name(), shape[0], options.max_request_samples));
      }
      if (count >= 0 && shape[0] != count) {
        return Invalid(
            fmt::format("input '{}' has {} samples, another input {}", in.name(), shape[0], count));
      }
      count = shape[0];
      const std::string& raw = request.raw_input_contents(k);
      const int64_t want_bytes = count * c.SampleBytes(form);
      if (static_cast<int64_t>(raw.size()) != want_bytes) {
        return Invalid(
            fmt::format("input '{}': {} raw bytes, {} for shape [{}] {} ({})", in.name(),
                        raw.size(), want_bytes, fmt::join(shape, ", "), in.datatype(),
                        static_cast<int64_t>(raw.size()) < want_bytes ? "truncated" : "oversized"));
      }
      inputs[i].resize(static_cast<size_t>(count * c.tensor().values));
      if (Status s = c.Decode(form, raw, static_cast<int>(count), inputs[i].data()); !s.ok()) {
        return Invalid(s.message());
      }
    }
    *job = std::make_shared<Job>(static_cast<int>(count), std::move(inputs), m.classes);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext* context, const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    const Clock::time_point start = Clock::now();
    ServedModel* m = nullptr;
    grpc::Status status = Infer(context, *request, response, &m);
    const Labels labels = m != nullptr ? m->labels : Labels{{"model", ""}, {"version", ""}};
    metrics.Add("hybrid_requests_total", labels);
    if (status.ok()) {
      metrics.Add("hybrid_request_success_total", labels);
      metrics.Observe("hybrid_request_seconds", labels,
                      std::chrono::duration<double>(Clock::now() - start).count());
    } else {
      Labels with_code = labels;
      with_code.emplace_back("code", StatusCodeName(status.error_code()));
      metrics.Add("hybrid_request_failure_total", with_code);
      Log(LogLevel::kWarn, "request_failed",
          {{"model", request->model_name()},
           {"version", request->model_version()},
           {"id", request->id()},
           {"peer", context->peer()},
           {"code", StatusCodeName(status.error_code())},
           {"message", status.error_message()}});
    }
    if (status.ok() && LogEnabled(LogLevel::kDebug)) {
      Log(LogLevel::kDebug, "request",
          {{"model", m->name},
           {"id", request->id()},
           {"samples", response->outputs(0).shape(0)},
           {"ms", std::chrono::duration<double, std::milli>(Clock::now() - start).count()}});
    }
    return status;
  }

  grpc::Status Infer(grpc::ServerContext* context, const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response, ServedModel** model) {
    if (auto s = Authenticate(context); !s.ok()) return s;
    auto found = Find(request.model_name(), request.model_version());
    if (!found.ok()) return Invalid(found.message());
    ServedModel& m = **found;
    *model = &m;
    std::shared_ptr<Job> job;
    if (grpc::Status s = Prepare(m, request, &job); !s.ok()) return s;
    // A request without a deadline still ends: the batcher finishes everything queued.
    const auto limit = std::chrono::system_clock::now() + std::chrono::hours(1);
    const auto deadline = std::min(context->deadline(), limit);
    const Clock::time_point steady_deadline =
        Clock::now() +
        std::chrono::duration_cast<Clock::duration>(deadline - std::chrono::system_clock::now());
    job->expires = steady_deadline;
    if (Status s = m.batcher->Submit(job); !s.ok()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, s.message());
    }
    metrics.Set("hybrid_queue_requests", m.labels, m.batcher->queued());
    if (!job->Wait(steady_deadline, [context] { return context->IsCancelled(); })) {
      // gRPC marks a call past its deadline cancelled too: the deadline is the reason then.
      if (Clock::now() >= steady_deadline) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "the deadline passed before the batch with this request was computed");
      }
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the request");
    }
    if (!job->status.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, job->status.message());
    metrics.Observe("hybrid_queue_seconds", m.labels, job->queue_us * 1e-6);
    response->set_model_name(m.name);
    response->set_model_version(m.version);
    response->set_id(request.id());
    (*response->mutable_parameters())["queue_us"].set_int64_param(
        static_cast<int64_t>(job->queue_us));
    (*response->mutable_parameters())["compute_us"].set_int64_param(
        static_cast<int64_t>(job->compute_us));
    (*response->mutable_parameters())["batch_size"].set_int64_param(job->batch_size);
    auto* out = response->add_outputs();
    out->set_name(m.output);
    out->set_datatype("FP32");
    out->add_shape(job->count);
    out->add_shape(m.classes);
    response->add_raw_output_contents()->assign(reinterpret_cast<const char*>(job->out.data()),
                                                job->out.size() * sizeof(float));
    return grpc::Status::OK;
  }

  // The KServe v2 REST endpoints for health and metadata, and /metrics.
  void RegisterHttp() {
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.Render(), "text/plain; version=0.0.4");
    });
    http.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"live":true})", "application/json");
    });
    http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      res.status = ready.load() ? 200 : 400;
      res.set_content(fmt::format(R"({{"ready":{}}})", ready.load()), "application/json");
    });
    http.Get("/v2", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(ServerMetadataJson().dump(), "application/json");
    });
    const auto model = [this](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1];
      const std::string version = req.matches.size() > 2 ? req.matches[2].str() : "";
      auto m = Find(name, version);
      const bool wants_ready =
          req.path.size() >= 6 && req.path.substr(req.path.size() - 6) == "/ready";
      if (!m.ok()) {
        res.status = 404;
        res.set_content(nlohmann::json{{"error", m.message()}}.dump(), "application/json");
        return;
      }
      if (wants_ready) {
        res.status = ready.load() ? 200 : 400;
        res.set_content(fmt::format(R"({{"ready":{}}})", ready.load()), "application/json");
        return;
      }
      inference::ModelMetadataResponse md;
      FillMetadata(**m, &md);
      nlohmann::json j = {{"name", md.name()}, {"platform", md.platform()}};
      j["versions"] = std::vector<std::string>(md.versions().begin(), md.versions().end());
      for (const auto* list : {&md.inputs(), &md.outputs()}) {
        nlohmann::json tensors = nlohmann::json::array();
        for (const auto& t : *list) {
          tensors.push_back({{"name", t.name()},
                             {"datatype", t.datatype()},
                             {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
        }
        j[list == &md.inputs() ? "inputs" : "outputs"] = tensors;
      }
      res.set_content(j.dump(), "application/json");
    };
    http.Get(R"(/v2/models/([^/]+)/versions/([^/]+)/ready)", model);
    http.Get(R"(/v2/models/([^/]+)/ready)", model);
    http.Get(R"(/v2/models/([^/]+)/versions/([^/]+))", model);
    http.Get(R"(/v2/models/([^/]+))", model);
  }

  Status Listen() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (!options.tls_cert.empty() || !options.tls_key.empty()) {
      if (options.tls_cert.empty() || options.tls_key.empty()) {
        return Error("TLS needs both a certificate and a key");
      }
      grpc::SslServerCredentialsOptions ssl;
      HYBRID_ASSIGN_OR_RETURN(std::string cert, ReadTextFile(options.tls_cert, "TLS certificate"));
      HYBRID_ASSIGN_OR_RETURN(std::string key, ReadTextFile(options.tls_key, "TLS key"));
      ssl.pem_key_cert_pairs.push_back({key, cert});
      if (!options.tls_client_ca.empty()) {
        HYBRID_ASSIGN_OR_RETURN(ssl.pem_root_certs,
                                ReadTextFile(options.tls_client_ca, "client CA certificate"));
        ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      }
      creds = grpc::SslServerCredentials(ssl);
    } else {
      if (!options.tls_client_ca.empty()) return Error("client certificates need TLS");
      creds = grpc::InsecureServerCredentials();
    }
    const std::string address = fmt::format("{}:{}", options.host, options.grpc_port);
    builder.AddListeningPort(address, creds, &grpc_port);
    builder.RegisterService(this);
    // A port another server holds is an error, not a share (gRPC sets SO_REUSEPORT by default).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    // Every request in the queue holds a thread while it waits; leave room above the queues.
    grpc::ResourceQuota quota("hybrid-server");
    const int queues = static_cast<int>(models.size()) * options.batching.max_queue;
    quota.SetMaxThreads(std::max(64, queues + 64));
    builder.SetResourceQuota(quota);
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr || grpc_port == 0) {
      return Error("cannot listen for gRPC on {} (in use, or not an address of this host?)",
                   address);
    }
    auto* health = grpc_server->GetHealthCheckService();
    health->SetServingStatus("", true);
    health->SetServingStatus(kServiceName, true);
    if (options.http_port >= 0) {
      RegisterHttp();
      http_port =
          options.http_port == 0
              ? http.bind_to_any_port(options.host)
              : (http.bind_to_port(options.host, options.http_port) ? options.http_port : -1);
      if (http_port < 0) {
        grpc_server->Shutdown();
        return Error("cannot listen for HTTP on {}:{}", options.host, options.http_port);
      }
      http_thread = std::thread([this] { http.listen_after_bind(); });
    }
    ready = true;
    return Status::Ok();
  }

  void Stop() {
    if (stopped.exchange(true)) return;
    ready = false;
    Log(LogLevel::kInfo, "shutting_down", {{"grace_seconds", options.grace_seconds}});
    if (grpc_server != nullptr) {
      grpc_server->GetHealthCheckService()->SetServingStatus(false);
      // Refuses new calls and waits for those in flight; they end as their batches do.
      const auto grace =
          std::chrono::system_clock::now() +
          std::chrono::milliseconds(static_cast<int64_t>(options.grace_seconds * 1e3));
      grpc_server->Shutdown(grace);
      grpc_server->Wait();
    }
    for (auto& m : models) m->batcher->Shutdown();
    if (http_thread.joinable()) {
      http.stop();
      http_thread.join();
    }
    Log(LogLevel::kInfo, "stopped");
  }
};

CloudServer::CloudServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CloudServer::~CloudServer() { Shutdown(); }

Result<std::unique_ptr<CloudServer>> CloudServer::Start(const ServerOptions& options) {
  if (options.models.empty()) return Error("no model to serve");
  if (options.max_message_bytes < 1024 || options.max_message_bytes > (int64_t{1} << 31) - 1) {
    return Error("max message size {} is out of range [1 KiB, 2 GiB)", options.max_message_bytes);
  }
  if (options.max_request_samples < 1) return Error("max request samples must be positive");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->DeclareMetrics();
  for (const std::string& path : options.models) {
    if (Status s = impl->Load(path); !s.ok()) return s.WithContext(path);
  }
  HYBRID_RETURN_IF_ERROR(impl->Listen());
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : impl->models) models.push_back(m->name + ":" + m->version);
  Log(LogLevel::kInfo, "listening",
      {{"grpc_port", impl->grpc_port},
       {"http_port", impl->http_port},
       {"host", options.host},
       {"tls", !options.tls_cert.empty()},
       {"models", models},
       {"max_batch", options.batching.max_batch},
       {"max_queue_delay_us", options.batching.max_queue_delay_us},
       {"max_queue", options.batching.max_queue}});
  return std::unique_ptr<CloudServer>(new CloudServer(std::move(impl)));
}

int CloudServer::grpc_port() const { return impl_->grpc_port; }
int CloudServer::http_port() const { return impl_->http_port; }

std::vector<std::pair<std::string, std::string>> CloudServer::served() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : impl_->models) out.emplace_back(m->name, m->version);
  return out;
}

std::string CloudServer::MetricsText() const { return impl_->metrics.Render(); }

void CloudServer::Shutdown() {
  if (impl_) impl_->Stop();
}

}  // namespace hybrid::net
