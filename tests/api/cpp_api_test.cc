// The header-only C++ layer: errors come back as values with the C API's codes and messages,
// answers equal the C API's, and a std::function transport (including one that throws) is wired
// through the C callback. Like an application, it includes no header of the engine's own.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <hybrid/hybrid.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const char* const kModel = HYBRID_EXAMPLE_MODEL;
constexpr int kImages = 24;

const std::vector<uint8_t>& Pixels() {
  static const std::vector<uint8_t> pixels = [] {
    std::vector<uint8_t> v(16 + kImages * 784);
    gzFile f = gzopen("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzread(f, v.data(), static_cast<unsigned>(v.size())), static_cast<int>(v.size()));
    gzclose(f);
    return std::vector<uint8_t>(v.begin() + 16, v.end());  // after the IDX header
  }();
  return pixels;
}

hybrid::Model Load() {
  auto model = hybrid::Model::Load(kModel);
  EXPECT_TRUE(model) << model.error().message;
  return *model;
}

std::vector<hybrid::Answer> Classify(hybrid::Session& s) {
  auto answers = s.Classify(Pixels().data(), Pixels().size(), kImages);
  EXPECT_TRUE(answers) << answers.error().message;
  return answers ? *answers : std::vector<hybrid::Answer>();
}

void ExpectSame(const std::vector<hybrid::Answer>& a, const std::vector<hybrid::Answer>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, b[i].label) << i;
    EXPECT_EQ(a[i].where, b[i].where) << i;
    EXPECT_EQ(a[i].score, b[i].score) << i;
  }
}

TEST(CppApi, ErrorsAreValues) {
  auto missing = hybrid::Model::Load("/nonexistent.hybrid");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, HYBRID_NOT_FOUND);
  EXPECT_NE(missing.error().message.find("cannot open '/nonexistent.hybrid'"), std::string::npos);
  const char garbage[] = "not a model at all";
  auto bad = hybrid::Model::FromMemory(garbage, sizeof(garbage));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, HYBRID_INVALID_MODEL);

  hybrid::Model model = Load();
  hybrid::SessionOptions options;
  options.edge_backend = "gpu";
  auto session = hybrid::Session::Create(model, options);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().code, HYBRID_INVALID_ARGUMENT);
  EXPECT_NE(session.error().message.find("unknown backend 'gpu'"), std::string::npos);
  options = {};
  options.batch = 0;
  session = hybrid::Session::Create(model, options);
  ASSERT_FALSE(session);
  EXPECT_NE(session.error().message.find("batch 0"), std::string::npos);
  options = {};
  options.exit = "nowhere";
  session = hybrid::Session::Create(model, options);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().code, HYBRID_NOT_FOUND);

  session = hybrid::Session::Create(model);
  ASSERT_TRUE(session) << session.error().message;
  auto wrong = session->Classify(Pixels().data(), 100, 1);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, HYBRID_INVALID_ARGUMENT);
  EXPECT_FALSE(session->SetThreshold(NAN));
  EXPECT_TRUE(session->SetThreshold(1.f));
}

TEST(CppApi, ModelInfo) {
  hybrid::Model model = Load();
  const hybrid::Model copy = model;  // NOLINT(performance-unnecessary-copy-initialization): shared
  EXPECT_EQ(copy.get(), model.get());
  EXPECT_EQ(model.pixels(), 784u);
  EXPECT_EQ(model.classes(), 10);
  EXPECT_EQ(model.class_name(0), "T-shirt/top");
  ASSERT_EQ(model.outputs().size(), 2u);
  EXPECT_EQ(model.outputs()[0].name, "exit1");
  EXPECT_EQ(model.outputs()[0].kind, "exit");
  ASSERT_EQ(model.cloud_inputs().size(), 1u);
  EXPECT_EQ(model.cloud_inputs()[0].values_per_sample, 14 * 14 * 16);
  EXPECT_EQ(hybrid::Version(), HYBRID_VERSION_STRING);
  EXPECT_EQ(hybrid::ModelFormatVersion(), HYBRID_MODEL_FORMAT_VERSION);
}

TEST(CppApi, AnswersEqualTheCApis) {
  hybrid::Model model = Load();
  hybrid::SessionOptions options;
  options.threshold = 0.4f;
  options.batch = 5;
  options.threads = 1;
  auto session = hybrid::Session::Create(model, options);
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_EQ(session->exit(), "exit1");
  EXPECT_EQ(session->router(), "entropy");
  const auto answers = Classify(*session);

  hybrid_options* o = nullptr;
  ASSERT_EQ(hybrid_options_create(&o), HYBRID_OK);
  ASSERT_EQ(hybrid_options_set_threshold(o, 0.4f), HYBRID_OK);
  hybrid_session* s = nullptr;
  ASSERT_EQ(hybrid_session_create(model.get(), o, &s), HYBRID_OK);
  std::vector<hybrid_answer> raw(kImages);
  ASSERT_EQ(hybrid_session_classify(s, Pixels().data(), Pixels().size(), kImages, raw.data()),
            HYBRID_OK);
  for (int i = 0; i < kImages; ++i) {
    EXPECT_EQ(answers[i].label, raw[i].label);
    EXPECT_EQ(static_cast<int>(answers[i].where), raw[i].where);
    EXPECT_EQ(answers[i].score, raw[i].score);
    EXPECT_EQ(answers[i].confidence, raw[i].confidence);
  }
  EXPECT_EQ(hybrid_session_destroy(s), HYBRID_OK);
  EXPECT_EQ(hybrid_options_destroy(o), HYBRID_OK);

  // A moved session keeps working.
  hybrid::Session moved = std::move(*session);
  ExpectSame(Classify(moved), answers);
}

TEST(CppApi, FunctionTransportsRunTheCloudAndTheirFailuresComeBack) {
  hybrid::Model model = Load();
  hybrid::SessionOptions options;
  options.threshold = -INFINITY;
  auto plain = hybrid::Session::Create(model, options);
  ASSERT_TRUE(plain) << plain.error().message;
  const auto reference = Classify(*plain);

  auto cloud = hybrid::Cloud::Create(model);
  ASSERT_TRUE(cloud) << cloud.error().message;
  enum class Mode { kRun, kUnavailable, kThrow } mode = Mode::kRun;
  int carried = 0;
  options.transport = [&](const hybrid::CloudRequest& request, float* probabilities,
                          int classes) -> hybrid::Expected<void> {
    if (mode == Mode::kUnavailable) return hybrid::Error{HYBRID_UNAVAILABLE, "cloud is down"};
    if (mode == Mode::kThrow) throw std::runtime_error("a bug in the application's transport");
    carried += request.count;
    return cloud->Run(request, probabilities, classes);
  };
  auto session = hybrid::Session::Create(model, options);
  ASSERT_TRUE(session) << session.error().message;
  ExpectSame(Classify(*session), reference);
  EXPECT_EQ(carried, kImages);

  mode = Mode::kUnavailable;  // the edge answers, flagged
  for (const hybrid::Answer& a : Classify(*session)) {
    EXPECT_TRUE(a.degraded);
    EXPECT_EQ(a.where, hybrid::Where::kEdge);
  }
  mode = Mode::kThrow;
  auto thrown = session->Classify(Pixels().data(), Pixels().size(), kImages);
  ASSERT_FALSE(thrown);
  EXPECT_EQ(thrown.error().code, HYBRID_INTERNAL);
  EXPECT_NE(thrown.error().message.find("a bug in the application's transport"), std::string::npos)
      << thrown.error().message;
  mode = Mode::kRun;
  ExpectSame(Classify(*session), reference);

  hybrid::CloudRequest mismatched;
  mismatched.count = 1;
  mismatched.inputs = {nullptr};
  float probs[10];
  auto refused = cloud->Run(mismatched, probs, 10);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, HYBRID_INVALID_ARGUMENT);
}

}  // namespace
