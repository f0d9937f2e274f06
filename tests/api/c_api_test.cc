// The C API as an application sees it: every call refuses bad arguments with a status and a
// message, answers agree with the engine run on the whole model, custom transports and models in
// memory give the same answers, and sessions on one shared model agree across 8 threads.
#include <gtest/gtest.h>
#include <hybrid/hybrid.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "engine/executor.h"
#include "graph/model_file.h"
#include "net/log.h"
#include "net/server.h"

namespace {

const char* const kModel = HYBRID_EXAMPLE_MODEL;
constexpr int kImages = 48;

// The first kImages test images of Fashion-MNIST, as u8 pixels.
const std::vector<uint8_t>& Pixels() {
  static const std::vector<uint8_t> pixels = [] {
    auto ds = hybrid::data::LoadFashionMnist(hybrid::data::kDefaultFashionMnistDir,
                                             hybrid::data::Split::kTest);
    EXPECT_TRUE(ds.ok()) << ds.message();
    return std::vector<uint8_t>(ds->images.begin(), ds->images.begin() + kImages * 784);
  }();
  return pixels;
}

// Expects `s` to fail with `code` and a message naming the function.
#define EXPECT_FAILS(call, code, function)                                        \
  do {                                                                            \
    const hybrid_status s_ = (call);                                              \
    EXPECT_EQ(s_, code) << #call << " gave " << hybrid_status_name(s_);           \
    EXPECT_NE(std::string(hybrid_last_error()).find(function), std::string::npos) \
        << #call << ": " << hybrid_last_error();                                  \
  } while (0)

#define ASSERT_OK(call) ASSERT_EQ((call), HYBRID_OK) << #call << ": " << hybrid_last_error()

struct ModelDeleter {
  void operator()(hybrid_model* m) const { EXPECT_EQ(hybrid_model_destroy(m), HYBRID_OK); }
};
struct SessionDeleter {
  void operator()(hybrid_session* s) const { EXPECT_EQ(hybrid_session_destroy(s), HYBRID_OK); }
};
struct OptionsDeleter {
  void operator()(hybrid_options* o) const { EXPECT_EQ(hybrid_options_destroy(o), HYBRID_OK); }
};
struct CloudDeleter {
  void operator()(hybrid_cloud* c) const { EXPECT_EQ(hybrid_cloud_destroy(c), HYBRID_OK); }
};
using Model = std::unique_ptr<hybrid_model, ModelDeleter>;
using Session = std::unique_ptr<hybrid_session, SessionDeleter>;
using Options = std::unique_ptr<hybrid_options, OptionsDeleter>;
using Cloud = std::unique_ptr<hybrid_cloud, CloudDeleter>;

Model Load() {
  hybrid_model* m = nullptr;
  EXPECT_EQ(hybrid_model_load(kModel, &m), HYBRID_OK) << hybrid_last_error();
  return Model(m);
}

Options MakeOptions(float threshold, int batch = 8) {
  hybrid_options* o = nullptr;
  EXPECT_EQ(hybrid_options_create(&o), HYBRID_OK);
  EXPECT_EQ(hybrid_options_set_threshold(o, threshold), HYBRID_OK);
  EXPECT_EQ(hybrid_options_set_batch(o, batch), HYBRID_OK);
  EXPECT_EQ(hybrid_options_set_threads(o, 1), HYBRID_OK);
  return Options(o);
}

Session MakeSession(const hybrid_model* m, const hybrid_options* o) {
  hybrid_session* s = nullptr;
  EXPECT_EQ(hybrid_session_create(m, o, &s), HYBRID_OK) << hybrid_last_error();
  return Session(s);
}

std::vector<hybrid_answer> Classify(hybrid_session* s, int count = kImages) {
  std::vector<hybrid_answer> answers(count);
  EXPECT_EQ(hybrid_session_classify(s, Pixels().data(), count * 784u, count, answers.data()),
            HYBRID_OK)
      << hybrid_last_error();
  return answers;
}

void ExpectSameAnswers(const std::vector<hybrid_answer>& a, const std::vector<hybrid_answer>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, b[i].label) << "image " << i;
    EXPECT_EQ(a[i].where, b[i].where) << "image " << i;
    EXPECT_EQ(a[i].score, b[i].score) << "image " << i;
    EXPECT_EQ(a[i].confidence, b[i].confidence) << "image " << i;
  }
}

// The classes of the model's outputs computed by the engine on the whole graph (as `hybrid run`
// does), for the test images.
std::vector<int> EngineClasses(const std::string& output) {
  auto g = hybrid::graph::LoadModelFile(kModel);
  EXPECT_TRUE(g.ok());
  auto graph = std::make_shared<const hybrid::graph::Graph>(std::move(g).value());
  hybrid::engine::PlanOptions o;
  o.batch = kImages;
  o.threads = 1;
  o.outputs = {output};
  auto ex = hybrid::engine::Executor::Create(graph, o);
  EXPECT_TRUE(ex.ok()) << ex.message();
  hybrid::engine::TensorView in = (*ex)->Tensor(graph->inputs[0]);
  for (size_t j = 0; j < Pixels().size(); ++j) {
    in.data[j] = (Pixels()[j] / 255.f - graph->input_mean[0]) / graph->input_std[0];
  }
  EXPECT_TRUE((*ex)->Run().ok());
  hybrid::engine::TensorView out = (*ex)->Tensor(graph->FindOutput(output)->tensor);
  const int64_t classes = out.size() / kImages;
  std::vector<int> labels;
  for (int i = 0; i < kImages; ++i) {
    const float* row = out.data + i * classes;
    labels.push_back(static_cast<int>(std::max_element(row, row + classes) - row));
  }
  return labels;
}

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

TEST(CApi, VersionAndModelInfo) {
  EXPECT_STREQ(hybrid_version(), HYBRID_VERSION_STRING);
  EXPECT_EQ(hybrid_model_format_version(), HYBRID_MODEL_FORMAT_VERSION);
  EXPECT_STREQ(hybrid_status_name(HYBRID_UNAVAILABLE), "HYBRID_UNAVAILABLE");
  EXPECT_STREQ(hybrid_status_name(static_cast<hybrid_status>(99)), "unknown");
  Model m = Load();
  int32_t h = 0, w = 0, c = 0, classes = 0, outputs = 0, cloud_inputs = 0;
  ASSERT_OK(hybrid_model_input_shape(m.get(), &h, &w, &c));
  EXPECT_EQ(h, 28);
  EXPECT_EQ(w, 28);
  EXPECT_EQ(c, 1);
  ASSERT_OK(hybrid_model_classes(m.get(), &classes));
  EXPECT_EQ(classes, 10);
  const char* name = nullptr;
  ASSERT_OK(hybrid_model_name(m.get(), &name));
  EXPECT_STREQ(name, "example-shape-a-random");
  ASSERT_OK(hybrid_model_class_name(m.get(), 9, &name));
  EXPECT_STREQ(name, "Ankle boot");
  ASSERT_OK(hybrid_model_output_count(m.get(), &outputs));
  ASSERT_EQ(outputs, 2);
  const char* kind = nullptr;
  ASSERT_OK(hybrid_model_output(m.get(), 1, &name, &kind));
  EXPECT_STREQ(name, "final");
  EXPECT_STREQ(kind, "final");
  ASSERT_OK(hybrid_model_cloud_input_count(m.get(), &cloud_inputs));
  ASSERT_EQ(cloud_inputs, 1);
  int64_t values = 0;
  ASSERT_OK(hybrid_model_cloud_input(m.get(), 0, &name, &values));
  EXPECT_EQ(values, 14 * 14 * 16);
}

TEST(CApi, AnswersAgreeWithTheEngineOnTheWholeModel) {
  Model m = Load();
  const std::vector<int> exit = EngineClasses("exit1"), final = EngineClasses("final");
  Options edge_only = MakeOptions(INFINITY), cloud_only = MakeOptions(-INFINITY);
  Session edge = MakeSession(m.get(), edge_only.get());
  Session cloud = MakeSession(m.get(), cloud_only.get());
  const char* name = nullptr;
  ASSERT_OK(hybrid_session_exit(edge.get(), &name));
  EXPECT_STREQ(name, "exit1");
  ASSERT_OK(hybrid_session_router(edge.get(), &name));
  EXPECT_STREQ(name, "entropy");
  const auto at_edge = Classify(edge.get()), in_cloud = Classify(cloud.get());
  for (int i = 0; i < kImages; ++i) {
    EXPECT_EQ(at_edge[i].where, HYBRID_EDGE);
    EXPECT_EQ(at_edge[i].label, exit[i]) << "image " << i;
    EXPECT_EQ(at_edge[i].cloud_ms, 0.0);
    EXPECT_EQ(in_cloud[i].where, HYBRID_CLOUD);
    EXPECT_EQ(in_cloud[i].label, final[i]) << "image " << i;
    EXPECT_GT(in_cloud[i].total_ms, 0.0);
    // The score does not depend on where the input goes.
    EXPECT_EQ(at_edge[i].score, in_cloud[i].score);
  }
  // A threshold in the middle splits the inputs by score, and abstaining leaves the rest
  // unanswered.
  std::vector<float> scores(at_edge.size());
  for (size_t i = 0; i < at_edge.size(); ++i) scores[i] = at_edge[i].score;
  std::nth_element(scores.begin(), scores.begin() + kImages / 2, scores.end());
  const float median = scores[kImages / 2];
  ASSERT_OK(hybrid_session_set_threshold(edge.get(), median));
  Options abstaining = MakeOptions(median);
  ASSERT_OK(hybrid_options_set_abstain(abstaining.get(), 1));
  Session abstain = MakeSession(m.get(), abstaining.get());
  const auto split = Classify(edge.get()), unanswered = Classify(abstain.get());
  for (int i = 0; i < kImages; ++i) {
    const bool stays = at_edge[i].score <= median;
    EXPECT_EQ(split[i].where, stays ? HYBRID_EDGE : HYBRID_CLOUD);
    EXPECT_EQ(split[i].label, stays ? exit[i] : final[i]);
    EXPECT_EQ(unanswered[i].where, stays ? HYBRID_EDGE : HYBRID_ABSTAIN);
    EXPECT_EQ(unanswered[i].label, stays ? exit[i] : -1);
  }
}

// A transport that runs a hybrid_cloud, counting the samples it carries.
struct CloudCall {
  hybrid_cloud* cloud = nullptr;
  int samples = 0;
  hybrid_status fail_with = HYBRID_OK;
};

hybrid_status CallCloud(void* user, int32_t count, int32_t num_inputs, const float* const* inputs,
                        const int64_t* sizes, float* probabilities, int32_t classes) {
  auto* call = static_cast<CloudCall*>(user);
  if (call->fail_with != HYBRID_OK) return call->fail_with;
  call->samples += count;
  return hybrid_cloud_run(call->cloud, count, num_inputs, inputs, sizes, probabilities, classes);
}

TEST(CApi, CustomTransportToACloudGivesTheInProcessAnswers) {
  Model m = Load();
  Options plain = MakeOptions(-INFINITY);
  const auto reference = Classify(MakeSession(m.get(), plain.get()).get());
  Options cloud_options = MakeOptions(0.f, 4);  // another batch than the session's
  hybrid_cloud* c = nullptr;
  ASSERT_OK(hybrid_cloud_create(m.get(), cloud_options.get(), &c));
  Cloud cloud(c);
  CloudCall call{cloud.get()};
  Options o = MakeOptions(-INFINITY);
  ASSERT_OK(hybrid_options_set_transport(o.get(), CallCloud, &call));
  Session s = MakeSession(m.get(), o.get());
  const auto answers = Classify(s.get());
  ExpectSameAnswers(answers, reference);
  EXPECT_EQ(call.samples, kImages);
  // A cloud that cannot be reached: the edge answers, flagged degraded.
  call.fail_with = HYBRID_UNAVAILABLE;
  const std::vector<int> exit = EngineClasses("exit1");
  const auto degraded = Classify(s.get());
  for (int i = 0; i < kImages; ++i) {
    EXPECT_EQ(degraded[i].where, HYBRID_EDGE);
    EXPECT_EQ(degraded[i].degraded, 1);
    EXPECT_EQ(degraded[i].label, exit[i]);
    EXPECT_EQ(reference[i].degraded, 0);
  }
  // Any other status from the transport fails the call.
  call.fail_with = HYBRID_INTERNAL;
  std::vector<hybrid_answer> out(kImages);
  EXPECT_FAILS(
      hybrid_session_classify(s.get(), Pixels().data(), Pixels().size(), kImages, out.data()),
      HYBRID_INTERNAL, "transport returned HYBRID_INTERNAL");
  // A transport whose own hybrid call failed passes that call's message on.
  call.fail_with = HYBRID_OK;
  call.cloud = reinterpret_cast<hybrid_cloud*>(m.get());
  EXPECT_FAILS(
      hybrid_session_classify(s.get(), Pixels().data(), Pixels().size(), kImages, out.data()),
      HYBRID_INVALID_ARGUMENT, "hybrid_cloud_run: cloud is not a live handle");
  // The session recovers once the cloud is back.
  call.cloud = cloud.get();
  ExpectSameAnswers(Classify(s.get()), reference);
}

TEST(CApi, TheCloudOverTheNetworkGivesTheInProcessAnswers) {
  hybrid::net::SetLogLevel("warn");
  hybrid::net::ServerOptions so;
  so.models = {kModel};
  so.host = "127.0.0.1";
  so.grpc_port = 0;
  so.http_port = -1;
  so.token = "t0ken";
  auto server = hybrid::net::CloudServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.message();
  const std::string endpoint = "127.0.0.1:" + std::to_string((*server)->grpc_port());
  Model m = Load();
  Options local = MakeOptions(0.3f);
  const auto reference = Classify(MakeSession(m.get(), local.get()).get());
  Options remote = MakeOptions(0.3f);
  ASSERT_OK(hybrid_options_set_cloud(remote.get(), endpoint.c_str(), 5000));
  ASSERT_OK(hybrid_options_set_cloud_token(remote.get(), "t0ken"));
  Session s = MakeSession(m.get(), remote.get());
  ExpectSameAnswers(Classify(s.get()), reference);
  // A wrong token is refused, not degraded.
  ASSERT_OK(hybrid_options_set_cloud_token(remote.get(), "wrong"));
  Session refused = MakeSession(m.get(), remote.get());
  std::vector<hybrid_answer> out(kImages);
  EXPECT_FAILS(
      hybrid_session_classify(refused.get(), Pixels().data(), Pixels().size(), kImages, out.data()),
      HYBRID_REFUSED, "UNAUTHENTICATED");
  // The server gone: the edge answers what was meant for the cloud, flagged.
  (*server)->Shutdown();
  const auto degraded = Classify(s.get());
  int flagged = 0;
  for (int i = 0; i < kImages; ++i) {
    EXPECT_EQ(degraded[i].where, HYBRID_EDGE);
    flagged += degraded[i].degraded;
    EXPECT_EQ(degraded[i].degraded != 0, reference[i].where == HYBRID_CLOUD) << i;
  }
  EXPECT_GT(flagged, 0);
  // Bad endpoints are refused when set.
  EXPECT_FAILS(hybrid_options_set_cloud(remote.get(), "nohost", 0), HYBRID_INVALID_ARGUMENT,
               "not HOST:PORT");
  EXPECT_FAILS(hybrid_options_set_cloud(remote.get(), endpoint.c_str(), -1),
               HYBRID_INVALID_ARGUMENT, "deadline_ms is negative");
  EXPECT_FAILS(hybrid_options_set_cloud_tls(remote.get(), nullptr, "c.pem", "k.pem"),
               HYBRID_INVALID_ARGUMENT, "needs TLS");
  ASSERT_OK(hybrid_options_set_cloud_tls(remote.get(), "/nonexistent/ca.pem", nullptr, nullptr));
  hybrid_session* none = nullptr;
  EXPECT_FAILS(hybrid_session_create(m.get(), remote.get(), &none), HYBRID_INVALID_ARGUMENT,
               "cannot read the CA certificate '/nonexistent/ca.pem'");
}

TEST(CApi, ModelsFromMemoryAlignedOrNotGiveTheFileAnswers) {
  Model file = Load();
  Options o = MakeOptions(0.5f);
  const auto reference = Classify(MakeSession(file.get(), o.get()).get());
  const std::vector<char> bytes = ReadFile(kModel);
  // Aligned bytes are used in place, unaligned ones copied.
  alignas(64) static char aligned[1 << 20];
  ASSERT_LE(bytes.size() + 1, sizeof(aligned));
  for (size_t offset : {0, 1}) {
    std::memcpy(aligned + offset, bytes.data(), bytes.size());
    hybrid_model* m = nullptr;
    ASSERT_OK(hybrid_model_load_from_memory(aligned + offset, bytes.size(), &m));
    Model memory(m);
    ExpectSameAnswers(Classify(MakeSession(memory.get(), o.get()).get()), reference);
  }
}

TEST(CApi, TheModelHandleCanGoBeforeItsSessions) {
  Model m = Load();
  Options o = MakeOptions(0.5f);
  const auto reference = Classify(MakeSession(m.get(), o.get()).get());
  Session s = MakeSession(m.get(), o.get());
  hybrid_cloud* c = nullptr;
  ASSERT_OK(hybrid_cloud_create(m.get(), nullptr, &c));
  Cloud cloud(c);
  ASSERT_OK(hybrid_model_destroy(m.release()));
  ExpectSameAnswers(Classify(s.get()), reference);
}

TEST(CApi, BadModelsAreRefused) {
  hybrid_model* m = nullptr;
  EXPECT_FAILS(hybrid_model_load("/nonexistent/model.hybrid", &m), HYBRID_NOT_FOUND,
               "hybrid_model_load: cannot open '/nonexistent/model.hybrid'");
  EXPECT_FAILS(hybrid_model_load("/etc/passwd", &m), HYBRID_INVALID_MODEL, "hybrid_model_load");
  EXPECT_FAILS(hybrid_model_load("/tmp", &m), HYBRID_INVALID_MODEL, "hybrid_model_load");
  const std::vector<char> bytes = ReadFile(kModel);
  // Truncated anywhere, or with a flipped byte in the header.
  for (size_t size : {size_t{0}, size_t{3}, size_t{64}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FAILS(hybrid_model_load_from_memory(bytes.data(), size, &m), HYBRID_INVALID_MODEL,
                 "hybrid_model_load_from_memory");
  }
  std::vector<char> flipped = bytes;
  flipped[5] ^= 0x5a;
  EXPECT_FAILS(hybrid_model_load_from_memory(flipped.data(), flipped.size(), &m),
               HYBRID_INVALID_MODEL, "hybrid_model_load_from_memory");
  EXPECT_EQ(m, nullptr);  // outputs stay untouched on failure
}

TEST(CApi, NullAndOutOfRangeArgumentsAreRefused) {
  Model m = Load();
  hybrid_model* out_model = nullptr;
  EXPECT_FAILS(hybrid_model_load(nullptr, &out_model), HYBRID_INVALID_ARGUMENT, "path is NULL");
  EXPECT_FAILS(hybrid_model_load(kModel, nullptr), HYBRID_INVALID_ARGUMENT, "model is NULL");
  EXPECT_FAILS(hybrid_model_load_from_memory(nullptr, 10, &out_model), HYBRID_INVALID_ARGUMENT,
               "data is NULL");
  int32_t v = 0;
  int64_t v64 = 0;
  const char* text = nullptr;
  EXPECT_FAILS(hybrid_model_name(nullptr, &text), HYBRID_INVALID_ARGUMENT, "model is NULL");
  EXPECT_FAILS(hybrid_model_name(m.get(), nullptr), HYBRID_INVALID_ARGUMENT, "name is NULL");
  EXPECT_FAILS(hybrid_model_input_shape(m.get(), &v, nullptr, &v), HYBRID_INVALID_ARGUMENT,
               "width is NULL");
  EXPECT_FAILS(hybrid_model_classes(m.get(), nullptr), HYBRID_INVALID_ARGUMENT, "classes");
  EXPECT_FAILS(hybrid_model_class_name(m.get(), 10, &text), HYBRID_INVALID_ARGUMENT,
               "class 10 is out of range [0, 10)");
  EXPECT_FAILS(hybrid_model_class_name(m.get(), -1, &text), HYBRID_INVALID_ARGUMENT, "-1");
  EXPECT_FAILS(hybrid_model_output_count(m.get(), nullptr), HYBRID_INVALID_ARGUMENT, "count");
  EXPECT_FAILS(hybrid_model_output(m.get(), 2, &text, &text), HYBRID_INVALID_ARGUMENT,
               "output 2 is out of range");
  EXPECT_FAILS(hybrid_model_cloud_input_count(m.get(), nullptr), HYBRID_INVALID_ARGUMENT, "count");
  EXPECT_FAILS(hybrid_model_cloud_input(m.get(), 1, &text, &v64), HYBRID_INVALID_ARGUMENT,
               "cloud input 1 is out of range");

  EXPECT_FAILS(hybrid_options_create(nullptr), HYBRID_INVALID_ARGUMENT, "options is NULL");
  Options o = MakeOptions(0.f);
  EXPECT_FAILS(hybrid_options_set_edge_backend(o.get(), "tpu"), HYBRID_INVALID_ARGUMENT,
               "unknown backend 'tpu'");
  EXPECT_FAILS(hybrid_options_set_cloud_backend(o.get(), nullptr), HYBRID_INVALID_ARGUMENT,
               "backend is NULL");
  EXPECT_FAILS(hybrid_options_set_edge_backend(nullptr, "ref"), HYBRID_INVALID_ARGUMENT,
               "options is NULL");
  EXPECT_FAILS(hybrid_options_set_threads(o.get(), -1), HYBRID_INVALID_ARGUMENT,
               "threads -1 is out of range");
  EXPECT_FAILS(hybrid_options_set_batch(o.get(), 0), HYBRID_INVALID_ARGUMENT,
               "batch 0 is out of range");
  EXPECT_FAILS(hybrid_options_set_batch(o.get(), 1 << 30), HYBRID_INVALID_ARGUMENT, "out of range");
  EXPECT_FAILS(hybrid_options_set_exit(o.get(), nullptr), HYBRID_INVALID_ARGUMENT, "output");
  EXPECT_FAILS(hybrid_options_set_router(o.get(), "oracle"), HYBRID_INVALID_ARGUMENT,
               "unknown router 'oracle'");
  EXPECT_FAILS(hybrid_options_set_threshold(o.get(), NAN), HYBRID_INVALID_ARGUMENT, "NaN");
  EXPECT_FAILS(hybrid_options_set_abstain(nullptr, 1), HYBRID_INVALID_ARGUMENT, "options");
  EXPECT_FAILS(hybrid_options_set_transport(nullptr, CallCloud, nullptr), HYBRID_INVALID_ARGUMENT,
               "options");

  hybrid_session* s = nullptr;
  EXPECT_FAILS(hybrid_session_create(nullptr, o.get(), &s), HYBRID_INVALID_ARGUMENT,
               "model is NULL");
  EXPECT_FAILS(hybrid_session_create(m.get(), o.get(), nullptr), HYBRID_INVALID_ARGUMENT,
               "session is NULL");
  ASSERT_OK(hybrid_options_set_exit(o.get(), "exit7"));
  EXPECT_FAILS(hybrid_session_create(m.get(), o.get(), &s), HYBRID_NOT_FOUND,
               "the model has no output 'exit7'");
  ASSERT_OK(hybrid_options_set_exit(o.get(), ""));
  ASSERT_OK(hybrid_options_set_router(o.get(), "learned"));
  EXPECT_FAILS(hybrid_session_create(m.get(), o.get(), &s), HYBRID_UNSUPPORTED,
               "no learned router");
  EXPECT_EQ(s, nullptr);

  Options good = MakeOptions(0.f);
  Session session = MakeSession(m.get(), good.get());
  std::vector<hybrid_answer> answers(2);
  const uint8_t* px = Pixels().data();
  EXPECT_FAILS(hybrid_session_classify(nullptr, px, 784, 1, answers.data()),
               HYBRID_INVALID_ARGUMENT, "session is NULL");
  EXPECT_FAILS(hybrid_session_classify(session.get(), px, 784, 2, answers.data()),
               HYBRID_INVALID_ARGUMENT, "784 bytes of pixels for 2 images of 784 pixels each");
  EXPECT_FAILS(hybrid_session_classify(session.get(), px, 785, 1, answers.data()),
               HYBRID_INVALID_ARGUMENT, "785 bytes");
  EXPECT_FAILS(hybrid_session_classify(session.get(), px, 0, -1, answers.data()),
               HYBRID_INVALID_ARGUMENT, "count is negative");
  EXPECT_FAILS(hybrid_session_classify(session.get(), nullptr, 784, 1, answers.data()),
               HYBRID_INVALID_ARGUMENT, "pixels is NULL");
  EXPECT_FAILS(hybrid_session_classify(session.get(), px, 784, 1, nullptr), HYBRID_INVALID_ARGUMENT,
               "answers is NULL");
  EXPECT_EQ(hybrid_session_classify(session.get(), nullptr, 0, 0, nullptr), HYBRID_OK);
  EXPECT_FAILS(hybrid_session_set_threshold(session.get(), NAN), HYBRID_INVALID_ARGUMENT, "NaN");
  EXPECT_FAILS(hybrid_session_exit(session.get(), nullptr), HYBRID_INVALID_ARGUMENT, "output");
  EXPECT_FAILS(hybrid_session_router(nullptr, &text), HYBRID_INVALID_ARGUMENT, "session");

  hybrid_cloud* c = nullptr;
  EXPECT_FAILS(hybrid_cloud_create(m.get(), good.get(), nullptr), HYBRID_INVALID_ARGUMENT,
               "cloud is NULL");
  ASSERT_OK(hybrid_cloud_create(m.get(), good.get(), &c));
  Cloud cloud(c);
  std::vector<float> features(2 * 3136), probs(2 * 10);
  const float* inputs[] = {features.data()};
  const int64_t sizes[] = {3136}, wrong_sizes[] = {3135};
  const float* null_inputs[] = {nullptr};
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), 2, 2, inputs, sizes, probs.data(), 10),
               HYBRID_INVALID_ARGUMENT, "the cloud reads 1 inputs, not 2");
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), 2, 1, inputs, wrong_sizes, probs.data(), 10),
               HYBRID_INVALID_ARGUMENT, "holds 3136 values per sample, not 3135");
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), 2, 1, inputs, sizes, probs.data(), 9),
               HYBRID_INVALID_ARGUMENT, "10 classes, not 9");
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), -2, 1, inputs, sizes, probs.data(), 10),
               HYBRID_INVALID_ARGUMENT, "count is negative");
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), 2, 1, null_inputs, sizes, probs.data(), 10),
               HYBRID_INVALID_ARGUMENT, "inputs[0] is NULL");
  EXPECT_FAILS(hybrid_cloud_run(cloud.get(), 2, 1, inputs, sizes, nullptr, 10),
               HYBRID_INVALID_ARGUMENT, "probabilities is NULL");
  ASSERT_OK(hybrid_cloud_run(cloud.get(), 2, 1, inputs, sizes, probs.data(), 10));
  for (int i = 0; i < 2; ++i) {
    float sum = 0;
    for (int j = 0; j < 10; ++j) sum += probs[i * 10 + j];
    EXPECT_NEAR(sum, 1.f, 1e-5f);
  }
}

TEST(CApi, DestroyedAndForeignHandlesAreRefused) {
  Model m = Load();
  hybrid_options* o = nullptr;
  ASSERT_OK(hybrid_options_create(&o));
  hybrid_session* s = nullptr;
  ASSERT_OK(hybrid_session_create(m.get(), o, &s));
  hybrid_cloud* c = nullptr;
  ASSERT_OK(hybrid_cloud_create(m.get(), o, &c));
  hybrid_model* second = nullptr;
  ASSERT_OK(hybrid_model_load(kModel, &second));

  // A handle of one kind passed as another is not live as that kind.
  int32_t v = 0;
  EXPECT_FAILS(hybrid_model_classes(reinterpret_cast<hybrid_model*>(s), &v),
               HYBRID_INVALID_ARGUMENT, "model is not a live handle");
  EXPECT_FAILS(hybrid_session_set_threshold(reinterpret_cast<hybrid_session*>(o), 1.f),
               HYBRID_INVALID_ARGUMENT, "session is not a live handle");
  EXPECT_FAILS(hybrid_options_destroy(reinterpret_cast<hybrid_options*>(m.get())),
               HYBRID_INVALID_ARGUMENT, "options is not a live handle");

  ASSERT_OK(hybrid_session_destroy(s));
  ASSERT_OK(hybrid_cloud_destroy(c));
  ASSERT_OK(hybrid_options_destroy(o));
  ASSERT_OK(hybrid_model_destroy(second));
  std::vector<hybrid_answer> answers(1);
  EXPECT_FAILS(hybrid_session_classify(s, Pixels().data(), 784, 1, answers.data()),
               HYBRID_INVALID_ARGUMENT, "hybrid_session_classify: session is not a live handle");
  EXPECT_FAILS(hybrid_session_destroy(s), HYBRID_INVALID_ARGUMENT, "destroyed twice");
  EXPECT_FAILS(hybrid_options_set_batch(o, 2), HYBRID_INVALID_ARGUMENT, "not a live handle");
  EXPECT_FAILS(hybrid_session_create(m.get(), o, &s), HYBRID_INVALID_ARGUMENT,
               "options is not a live handle");
  EXPECT_FAILS(hybrid_model_classes(second, &v), HYBRID_INVALID_ARGUMENT, "not a live handle");
  EXPECT_FAILS(hybrid_model_destroy(second), HYBRID_INVALID_ARGUMENT, "destroyed twice");
  float probs[10];
  EXPECT_FAILS(hybrid_cloud_run(c, 0, 1, nullptr, nullptr, probs, 10), HYBRID_INVALID_ARGUMENT,
               "cloud is not a live handle");
  EXPECT_FAILS(hybrid_cloud_destroy(c), HYBRID_INVALID_ARGUMENT, "destroyed twice");
  // Destroying nothing is not an error.
  EXPECT_EQ(hybrid_model_destroy(nullptr), HYBRID_OK);
  EXPECT_EQ(hybrid_session_destroy(nullptr), HYBRID_OK);
  EXPECT_EQ(hybrid_options_destroy(nullptr), HYBRID_OK);
  EXPECT_EQ(hybrid_cloud_destroy(nullptr), HYBRID_OK);
}

// A transport that holds the session inside classify until released.
struct Gate {
  std::promise<void> entered, release;
  hybrid_cloud* cloud = nullptr;
};

hybrid_status WaitAtGate(void* user, int32_t count, int32_t num_inputs, const float* const* inputs,
                         const int64_t* sizes, float* probabilities, int32_t classes) {
  auto* gate = static_cast<Gate*>(user);
  gate->entered.set_value();
  gate->release.get_future().wait();
  return hybrid_cloud_run(gate->cloud, count, num_inputs, inputs, sizes, probabilities, classes);
}

TEST(CApi, ASessionUsedByTwoThreadsAtOnceSaysBusy) {
  Model m = Load();
  Gate gate;
  hybrid_cloud* c = nullptr;
  ASSERT_OK(hybrid_cloud_create(m.get(), nullptr, &c));
  Cloud cloud(c);
  gate.cloud = cloud.get();
  Options o = MakeOptions(-INFINITY);
  ASSERT_OK(hybrid_options_set_transport(o.get(), WaitAtGate, &gate));
  Session s = MakeSession(m.get(), o.get());
  auto first = std::async(std::launch::async, [&] {
    std::vector<hybrid_answer> a(1);
    return hybrid_session_classify(s.get(), Pixels().data(), 784, 1, a.data());
  });
  gate.entered.get_future().wait();
  std::vector<hybrid_answer> a(1);
  EXPECT_FAILS(hybrid_session_classify(s.get(), Pixels().data(), 784, 1, a.data()), HYBRID_BUSY,
               "running on another thread");
  EXPECT_FAILS(hybrid_session_destroy(s.get()), HYBRID_BUSY, "running on another thread");
  gate.release.set_value();
  EXPECT_EQ(first.get(), HYBRID_OK);
}

TEST(CApi, EightThreadsWithTheirOwnSessionsOnOneModelAgreeWithOne) {
  Model m = Load();
  // A threshold that sends about half the inputs to the cloud, so both partitions run.
  Options probe = MakeOptions(INFINITY);
  auto scores = Classify(MakeSession(m.get(), probe.get()).get());
  std::nth_element(
      scores.begin(), scores.begin() + kImages / 2, scores.end(),
      [](const hybrid_answer& a, const hybrid_answer& b) { return a.score < b.score; });
  Options o = MakeOptions(scores[kImages / 2].score, 4);
  const auto reference = Classify(MakeSession(m.get(), o.get()).get());
  constexpr int kThreads = 8;
  std::vector<std::vector<hybrid_answer>> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      hybrid_session* s = nullptr;
      if (hybrid_session_create(m.get(), o.get(), &s) != HYBRID_OK) {
        ++failures;
        return;
      }
      for (int round = 0; round < 3; ++round) {
        results[t].assign(kImages, hybrid_answer{});
        if (hybrid_session_classify(s, Pixels().data(), Pixels().size(), kImages,
                                    results[t].data()) != HYBRID_OK) {
          ++failures;
        }
      }
      if (hybrid_session_destroy(s) != HYBRID_OK) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  int in_cloud = 0;
  for (const hybrid_answer& a : reference) in_cloud += a.where == HYBRID_CLOUD;
  EXPECT_GT(in_cloud, 0);
  EXPECT_LT(in_cloud, kImages);
  for (int t = 0; t < kThreads; ++t) ExpectSameAnswers(results[t], reference);
}

}  // namespace
