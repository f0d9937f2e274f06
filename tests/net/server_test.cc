// The cloud server on loopback, driven by raw gRPC clients of the protocol and by the edge's
// transport: metadata and health, answers equal to the in-process cloud, malformed requests
// refused with INVALID_ARGUMENT while the server keeps serving, tokens, deadlines, a full queue,
// failover and reconnection, TLS, and a graceful shutdown that finishes requests in flight.
#include "net/server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "graph/model_file.h"
#include "net/client.h"
#include "proto/health.grpc.pb.h"
#include "proto/inference.grpc.pb.h"
#include "tests/graph/test_graphs.h"
#include "tests/net/test_models.h"

namespace hybrid::net {
namespace {

namespace fs = std::filesystem;
using inference::GRPCInferenceService;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr int64_t kValues = 8 * 8 * 4;  // the tiny model's cloud input, relu1 [8, 8, 4]

// A temporary directory with the tiny model (f32 split) and an int4-split model written to it.
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("hybrid_server_test_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    tiny_ = std::make_shared<const graph::Graph>(graph::testing::TinyHybridGraph());
    int4_ = testing::SplitModel(graph::Precision::kInt4);
    ASSERT_TRUE(graph::WriteModelFile(*tiny_, Path("tiny.hybrid")).ok());
    ASSERT_TRUE(graph::WriteModelFile(*int4_, Path("int4.hybrid")).ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }

  static ServerOptions Options() {
    ServerOptions o;
    o.models = {Path("tiny.hybrid"), Path("int4.hybrid")};
    o.host = "127.0.0.1";
    o.grpc_port = 0;
    o.http_port = 0;
    o.batching.backend = "ref";
    o.batching.threads = 1;
    o.batching.max_queue_delay_us = 1000;
    o.grace_seconds = 10;
    return o;
  }

  static std::unique_ptr<CloudServer> Start(const ServerOptions& o) {
    auto s = CloudServer::Start(o);
    EXPECT_TRUE(s.ok()) << s.message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static std::unique_ptr<GRPCInferenceService::Stub> Stub(int port) {
    return GRPCInferenceService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                             grpc::InsecureChannelCredentials()));
  }

  static std::string Version(const graph::Graph& g) { return *graph::ModelFingerprint(g); }

  // A valid request for the tiny model: `count` samples of FP32 features.
  static ModelInferRequest TinyRequest(int count, uint32_t seed = 1) {
    ModelInferRequest r;
    r.set_model_name("tiny");
    auto* in = r.add_inputs();
    in->set_name("relu1");
    in->set_datatype("FP32");
    for (int64_t d : {int64_t{count}, int64_t{8}, int64_t{8}, int64_t{4}}) in->add_shape(d);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0, 2);
    std::vector<float> x(static_cast<size_t>(count * kValues));
    for (float& v : x) v = u(rng);
    r.add_raw_input_contents()->assign(reinterpret_cast<const char*>(x.data()), x.size() * 4);
    return r;
  }

  static grpc::Status Call(GRPCInferenceService::Stub& stub, const ModelInferRequest& r,
                           ModelInferResponse* response, int deadline_ms = 10000,
                           const std::string& token = "") {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    if (!token.empty()) context.AddMetadata("authorization", token);
    return stub.ModelInfer(&context, r, response);
  }

  static fs::path* dir_;
  static std::shared_ptr<const graph::Graph> tiny_, int4_;
};

fs::path* ServerTest::dir_ = nullptr;
std::shared_ptr<const graph::Graph> ServerTest::tiny_, ServerTest::int4_;

#define EXPECT_REFUSED(status, code, text)                                             \
  do {                                                                                 \
    const grpc::Status s_ = (status);                                                  \
    EXPECT_EQ(s_.error_code(), code) << s_.error_message();                            \
    EXPECT_NE(s_.error_message().find(text), std::string::npos) << s_.error_message(); \
  } while (0)

TEST_F(ServerTest, MetadataAndHealth) {
  auto server = Start(Options());
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->grpc_port());
  grpc::ClientContext c1, c2, c3, c4, c5, c6;
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub->ServerLive(&c1, {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub->ServerReady(&c2, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ServerMetadataResponse smd;
  ASSERT_TRUE(stub->ServerMetadata(&c3, {}, &smd).ok());
  EXPECT_EQ(smd.name(), "hybrid");
  inference::ModelMetadataRequest mreq;
  mreq.set_name("split-int4");
  inference::ModelMetadataResponse md;
  ASSERT_TRUE(stub->ModelMetadata(&c4, mreq, &md).ok());
  EXPECT_EQ(md.platform(), "hybrid");
  ASSERT_EQ(md.versions_size(), 1);
  EXPECT_EQ(md.versions(0), Version(*int4_));
  ASSERT_EQ(md.inputs_size(), 1);
  EXPECT_EQ(md.inputs(0).name(), "edge.act");
  EXPECT_EQ(md.inputs(0).datatype(), "UINT8");  // int4, packed: 9 * 7 * 6 values in 189 bytes
  EXPECT_EQ(std::vector<int64_t>(md.inputs(0).shape().begin(), md.inputs(0).shape().end()),
            (std::vector<int64_t>{-1, 189}));
  ASSERT_EQ(md.outputs_size(), 1);
  EXPECT_EQ(md.outputs(0).name(), "final");
  inference::ModelReadyRequest rr;
  rr.set_name("tiny");
  rr.set_version("0000000000000000");
  inference::ModelReadyResponse mr;
  ASSERT_TRUE(stub->ModelReady(&c5, rr, &mr).ok());
  EXPECT_FALSE(mr.ready());
  mreq.set_name("nope");
  EXPECT_EQ(stub->ModelMetadata(&c6, mreq, &md).error_code(), grpc::StatusCode::NOT_FOUND);

  // The standard health service.
  auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server->grpc_port()), grpc::InsecureChannelCredentials()));
  for (const char* service : {"", "inference.GRPCInferenceService"}) {
    grpc::ClientContext c;
    grpc::health::v1::HealthCheckRequest hr;
    hr.set_service(service);
    grpc::health::v1::HealthCheckResponse h;
    ASSERT_TRUE(health->Check(&c, hr, &h).ok());
    EXPECT_EQ(h.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  // The KServe v2 REST health endpoints and /metrics.
  httplib::Client http("127.0.0.1", server->http_port());
  EXPECT_EQ(http.Get("/v2/health/live")->status, 200);
  EXPECT_EQ(http.Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(http.Get("/v2/models/tiny/ready")->status, 200);
  EXPECT_EQ(http.Get("/v2/models/tiny/versions/" + Version(*tiny_) + "/ready")->status, 200);
  EXPECT_EQ(http.Get("/v2/models/nope/ready")->status, 404);
  auto model = http.Get("/v2/models/tiny");
  ASSERT_EQ(model->status, 200);
  EXPECT_NE(model->body.find(R"("name":"relu1")"), std::string::npos) << model->body;
  ModelInferResponse response;
  ASSERT_TRUE(Call(*stub, TinyRequest(3), &response).ok());
  auto metrics = http.Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("hybrid_requests_total{model=\"tiny\",version=\"" + Version(*tiny_) +
                               "\"} 1"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("# TYPE hybrid_batch_size histogram"), std::string::npos);
}

TEST_F(ServerTest, TheTransportGetsTheInProcessAnswersInTheCompactForm) {
  auto server = Start(Options());
  ASSERT_NE(server, nullptr);
  for (const auto& g : {tiny_, int4_}) {
    ClientOptions co;
    co.endpoints = {"127.0.0.1:" + std::to_string(server->grpc_port())};
    auto remote = GrpcTransport::Create(g, co);
    ASSERT_TRUE(remote.ok()) << remote.message();
    auto local = engine::MakeInProcessTransport(g, "ref", 16, 1);
    ASSERT_TRUE(local.ok());
    const auto wire = engine::CloudWire(*g);
    const int count = 13;
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.5, 1.5);
    std::vector<float> x(static_cast<size_t>(wire[0].values * count));
    for (float& v : x) v = u(rng);
    engine::CloudRequest request;
    request.count = count;
    request.inputs = {x};
    std::vector<float> a(count * 5), b(count * 5);
    engine::CloudReply ra, rb;
    ASSERT_TRUE((*local)->Infer(request, a, &ra).ok());
    ASSERT_TRUE((*remote)->Infer(request, b, &rb).ok());
    ASSERT_TRUE(rb.answered) << rb.reason;
    const int classes = g == tiny_ ? 3 : 5;
    for (int j = 0; j < count * classes; ++j) ASSERT_EQ(a[j], b[j]) << g->name << " " << j;
    EXPECT_EQ(rb.attempts, 1);
    // int4 travels in half a byte per value, f32 in four.
    const double per_value = rb.bytes_sent / static_cast<double>(x.size());
    if (g == int4_) {
      EXPECT_LT(per_value, 0.6);
    } else {
      EXPECT_GT(per_value, 4.0);
    }
    EXPECT_GT(rb.bytes_received, count * classes * 4);
    EXPECT_GE(rb.call_ms, rb.server_ms);
  }
}

TEST_F(ServerTest, MalformedRequestsAreRefusedAndTheServerKeepsServing) {
  ServerOptions o = Options();
  o.max_request_samples = 64;
  o.max_message_bytes = 1 << 20;
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->grpc_port());
  ModelInferResponse response;
  const auto Refused = [&](ModelInferRequest r, const std::string& text) {
    EXPECT_REFUSED(Call(*stub, r, &response), grpc::StatusCode::INVALID_ARGUMENT, text);
  };
  ModelInferRequest r = TinyRequest(2);
  r.set_model_name("tinier");
  Refused(r, "unknown model 'tinier'");
  r = TinyRequest(2);
  r.set_model_version("0123456789abcdef");
  Refused(r, "has no version '0123456789abcdef' here (it has " + Version(*tiny_) + ")");
  r = TinyRequest(2);
  (*r.mutable_parameters())["split"].set_string_param("conv1");
  Refused(r, "split 'conv1' does not match the model's 'relu1'");
  r = TinyRequest(2);
  r.clear_inputs();
  r.clear_raw_input_contents();
  Refused(r, "the model's cloud reads 1 input(s) (relu1), the request has 0");
  r = TinyRequest(2);
  r.mutable_inputs(0)->set_name("relu2");
  Refused(r, "unknown input 'relu2'");
  r = TinyRequest(2);
  r.mutable_inputs(0)->set_datatype("FP16");
  Refused(r, "datatype FP16 but f32 travels as FP32");
  r = TinyRequest(2);
  r.mutable_inputs(0)->set_shape(3, 5);
  Refused(r, "shape 2, 8, 8, 5 but the model takes [N, 8, 8, 4]");
  r = TinyRequest(2);
  r.mutable_inputs(0)->mutable_shape()->RemoveLast();
  Refused(r, "but the model takes [N, 8, 8, 4]");
  r = TinyRequest(2);
  r.mutable_inputs(0)->set_shape(0, 0);
  Refused(r, "with N >= 1");
  r = TinyRequest(2);
  r.mutable_raw_input_contents(0)->resize(2 * kValues * 4 - 3);
  Refused(r, "raw bytes, 2048 for shape [2, 8, 8, 4] FP32 (truncated)");
  r = TinyRequest(2);
  r.mutable_raw_input_contents(0)->append(4, '\0');
  Refused(r, "(oversized)");
  r = TinyRequest(2);
  r.clear_raw_input_contents();
  Refused(r, "1 inputs but 0 raw_input_contents");
  r = TinyRequest(2);
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  Refused(r, "send raw_input_contents, not contents");
  r = TinyRequest(2);
  (*r.mutable_inputs(0)->mutable_parameters())["encoding"].set_string_param("int8");
  Refused(r, "encoding int8 but the model takes f32");
  r = TinyRequest(2);
  (*r.mutable_inputs(0)->mutable_parameters())["encoding"].set_string_param("zip");
  Refused(r, "unknown encoding 'zip'");
  r = TinyRequest(2);
  r.add_outputs()->set_name("exit");
  Refused(r, "unknown output 'exit' (the model answers 'final')");
  Refused(TinyRequest(65), "65 samples, more than the 64 a request may carry");
  // A message over the size limit is refused by gRPC itself.
  EXPECT_EQ(Call(*stub, TinyRequest(1100), &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Still serving.
  ASSERT_TRUE(Call(*stub, TinyRequest(2), &response).ok());
  EXPECT_EQ(response.outputs(0).shape(0), 2);
  EXPECT_EQ(response.raw_output_contents(0).size(), 2u * 3 * 4);
  EXPECT_EQ(response.model_version(), Version(*tiny_));
  const std::string metrics = server->MetricsText();
  EXPECT_NE(metrics.find("code=\"INVALID_ARGUMENT\"} 15"), std::string::npos) << metrics;
}

TEST_F(ServerTest, ATokenIsRequiredWhenSet) {
  ServerOptions o = Options();
  o.token = "s3cret";
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->grpc_port());
  ModelInferResponse response;
  EXPECT_REFUSED(Call(*stub, TinyRequest(1), &response), grpc::StatusCode::UNAUTHENTICATED,
                 "missing authorization");
  EXPECT_REFUSED(Call(*stub, TinyRequest(1), &response, 10000, "Bearer s3cre7"),
                 grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  EXPECT_TRUE(Call(*stub, TinyRequest(1), &response, 10000, "Bearer s3cret").ok());
  // The transport: a wrong token is an error to report, not an outage to fall back from.
  ClientOptions co;
  co.endpoints = {"127.0.0.1:" + std::to_string(server->grpc_port())};
  co.token = "wrong";
  auto transport = GrpcTransport::Create(tiny_, co);
  ASSERT_TRUE(transport.ok());
  std::vector<float> x(kValues), out(3);
  engine::CloudRequest request{1, {x}};
  engine::CloudReply reply;
  const Status s = (*transport)->Infer(request, out, &reply);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("UNAUTHENTICATED"), std::string::npos) << s.message();
}

TEST_F(ServerTest, DeadlinesAndAFullQueue) {
  ServerOptions o = Options();
  o.batching.max_batch = 1000;
  o.batching.max_queue_delay_us = 1500000;  // a lone request waits 1.5 s for company
  o.batching.max_queue = 1;
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->grpc_port());
  // Past its deadline while waiting for company: DEADLINE_EXCEEDED, and the request is dropped.
  ModelInferResponse response;
  EXPECT_EQ(Call(*stub, TinyRequest(1), &response, 100).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server's deadline starts when the request arrives, a little after the client's.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // One request waits in the queue of one: the next is refused with UNAVAILABLE.
  auto first = std::async(std::launch::async, [&] {
    ModelInferResponse r;
    return Call(*stub, TinyRequest(1, 7), &r, 10000);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_REFUSED(Call(*stub, TinyRequest(1, 8), &response), grpc::StatusCode::UNAVAILABLE,
                 "queue is full");
  EXPECT_TRUE(first.get().ok());
  const std::string metrics = server->MetricsText();
  EXPECT_NE(metrics.find("code=\"UNAVAILABLE\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("code=\"DEADLINE_EXCEEDED\"} 1"), std::string::npos) << metrics;
  // The edge's transport: a late answer counts as none, after one attempt per endpoint. (A
  // queue with room: a retry may arrive before the server's clock withdraws the first attempt.)
  server->Shutdown();
  o.batching.max_queue = 4;
  server = Start(o);
  ASSERT_NE(server, nullptr);
  ClientOptions co;
  co.endpoints = {"127.0.0.1:" + std::to_string(server->grpc_port())};
  co.deadline_ms = 100;
  auto transport = GrpcTransport::Create(tiny_, co);
  ASSERT_TRUE(transport.ok());
  std::vector<float> x(kValues), out(3);
  engine::CloudReply reply;
  ASSERT_TRUE((*transport)->Infer(engine::CloudRequest{1, {x}}, out, &reply).ok());
  EXPECT_FALSE(reply.answered);
  EXPECT_EQ(reply.attempts, 2);
  EXPECT_NE(reply.reason.find("DEADLINE_EXCEEDED"), std::string::npos) << reply.reason;
}

TEST_F(ServerTest, RequestsInFlightFinishOnShutdown) {
  ServerOptions o = Options();
  o.batching.max_batch = 8;
  o.batching.max_queue_delay_us = 500000;
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = Stub(server->grpc_port());
  auto in_flight = std::async(std::launch::async, [&] {
    ModelInferResponse r;
    return Call(*stub, TinyRequest(2), &r, 10000);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  server->Shutdown();  // while the request waits for its batch
  EXPECT_TRUE(in_flight.get().ok());
  ModelInferResponse response;
  EXPECT_EQ(Call(*stub, TinyRequest(1), &response, 1000).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTest, TheTransportFailsOverAndReconnects) {
  // A port nobody listens on: bind one, note it, close it.
  int dead_port = 0;
  {
    httplib::Server probe;
    dead_port = probe.bind_to_any_port("127.0.0.1");
  }
  ServerOptions o = Options();
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  const int port = server->grpc_port();
  ClientOptions co;
  co.endpoints = {"127.0.0.1:" + std::to_string(dead_port), "127.0.0.1:" + std::to_string(port)};
  co.deadline_ms = 2000;
  auto transport = GrpcTransport::Create(tiny_, co);
  ASSERT_TRUE(transport.ok());
  std::vector<float> x(2 * kValues, 0.5f), out(6);
  engine::CloudRequest request{2, {x}};
  engine::CloudReply reply;
  ASSERT_TRUE((*transport)->Infer(request, out, &reply).ok());
  EXPECT_TRUE(reply.answered) << reply.reason;
  EXPECT_EQ(reply.attempts, 2);  // the dead endpoint first, then the live one
  // Every endpoint down: unanswered, with the reason.
  server->Shutdown();
  server.reset();
  ASSERT_TRUE((*transport)->Infer(request, out, &reply).ok());
  EXPECT_FALSE(reply.answered);
  EXPECT_NE(reply.reason.find("UNAVAILABLE"), std::string::npos) << reply.reason;
  // A server back on the same port is found again without a new transport.
  o.grpc_port = port;
  server = Start(o);
  ASSERT_NE(server, nullptr);
  bool answered = false;
  for (int i = 0; i < 50 && !answered; ++i) {
    ASSERT_TRUE((*transport)->Infer(request, out, &reply).ok());
    answered = reply.answered;
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(answered) << reply.reason;
}

TEST_F(ServerTest, DynamicBatchingCombinesConcurrentRequests) {
  ServerOptions o = Options();
  o.batching.max_batch = 16;
  o.batching.max_queue_delay_us = 100000;
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < 12; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      auto stub = Stub(server->grpc_port());
      ModelInferResponse r;
      return Call(*stub, TinyRequest(1, 50 + i), &r, 10000);
    }));
  }
  for (auto& c : calls) EXPECT_TRUE(c.get().ok());
  // Fewer batches than requests: some batch held more than one.
  const std::string m = server->MetricsText();
  const std::string key =
      "hybrid_batch_size_count{model=\"tiny\",version=\"" + Version(*tiny_) + "\"} ";
  const size_t at = m.find(key);
  ASSERT_NE(at, std::string::npos) << m;
  EXPECT_LT(std::stoi(m.substr(at + key.size())), 12) << m;
}

// Writes a CA, a server certificate for "localhost" and a client certificate with openssl.
bool MakeCertificates(const fs::path& dir) {
  const std::string d = dir.string();
  const std::string cmd =
      "cd '" + d +
      "' && "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
      "-subj /CN=hybrid-test-ca 2>/dev/null && "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost "
      "2>/dev/null && "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext && "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
      "-days 2 -extfile san.ext 2>/dev/null && "
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=edge "
      "2>/dev/null && "
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem "
      "-days 2 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(ServerTest, TlsAndClientCertificates) {
  const fs::path certs = *dir_ / "certs";
  fs::create_directories(certs);
  ASSERT_TRUE(MakeCertificates(certs)) << "openssl failed";
  const auto file = [&](const char* name) { return (certs / name).string(); };
  ServerOptions o = Options();
  o.tls_cert = file("server.pem");
  o.tls_key = file("server.key");
  o.tls_client_ca = file("ca.pem");
  auto server = Start(o);
  ASSERT_NE(server, nullptr);
  std::vector<float> x(kValues, 0.25f), out(3);
  engine::CloudRequest request{1, {x}};
  const auto Try = [&](ClientOptions co) {
    co.endpoints = {"localhost:" + std::to_string(server->grpc_port())};
    co.deadline_ms = 3000;
    co.attempts = 1;
    auto t = GrpcTransport::Create(tiny_, co);
    EXPECT_TRUE(t.ok()) << t.message();
    engine::CloudReply reply;
    EXPECT_TRUE((*t)->Infer(request, out, &reply).ok());
    return reply.answered;
  };
  ClientOptions full;
  full.tls_ca = file("ca.pem");
  full.tls_cert = file("client.pem");
  full.tls_key = file("client.key");
  EXPECT_TRUE(Try(full));
  ClientOptions no_client_cert;
  no_client_cert.tls_ca = file("ca.pem");
  EXPECT_FALSE(Try(no_client_cert));
  EXPECT_FALSE(Try(ClientOptions{}));  // plaintext to a TLS port
  // Bad server options are refused up front.
  o.tls_key.clear();
  EXPECT_FALSE(CloudServer::Start(o).ok());
}

TEST_F(ServerTest, BadServerOptionsAreRefused) {
  ServerOptions o = Options();
  o.models = {Path("missing.hybrid")};
  auto missing = CloudServer::Start(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("missing.hybrid"), std::string::npos);
  o = Options();
  o.models = {Path("tiny.hybrid"), Path("tiny.hybrid")};
  auto twice = CloudServer::Start(o);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.message().find("same model"), std::string::npos) << twice.message();
  o = Options();
  auto first = Start(o);
  ASSERT_NE(first, nullptr);
  o.grpc_port = first->grpc_port();  // taken
  auto taken = CloudServer::Start(o);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.message().find("cannot listen"), std::string::npos) << taken.message();
  EXPECT_FALSE(ParseEndpoints("localhost").ok());
  EXPECT_FALSE(ParseEndpoints("a:1,b:70000").ok());
  EXPECT_FALSE(ParseEndpoints("").ok());
  EXPECT_EQ(*ParseEndpoints("a:1,[::1]:2"), (std::vector<std::string>{"a:1", "[::1]:2"}));
}

}  // namespace
}  // namespace hybrid::net
