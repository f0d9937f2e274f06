// The C++ API of hybrid: a header-only layer over the C API (hybrid/hybrid.h), so that the
// library's binary interface is the C one whatever compiler or standard library the application
// uses. Errors are values: every call that can fail returns an Expected holding either the result
// or an Error (status code and message); nothing throws across the library and nothing aborts.
//
//   auto model = hybrid::Model::Load("fmnist_b_binary.hybrid");
//   if (!model) { std::cerr << model.error().message << "\n"; return 1; }
//   hybrid::SessionOptions options;
//   options.threshold = 0.25f;  // an operating point from `hybrid eval`
//   auto session = hybrid::Session::Create(*model, options);
//   auto answers = session->Classify(pixels.data(), pixels.size(), count);
//   for (const hybrid::Answer& a : *answers) use(a.label, a.where, a.score, a.total_ms);
//
// Requires C++17. Thread safety is the C API's: a Model may be shared by any number of threads
// (copies share one loaded model); a Session or Cloud is used by one thread at a time.
#ifndef HYBRID_HYBRID_HPP_
#define HYBRID_HYBRID_HPP_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "hybrid/hybrid.h"

namespace hybrid {

// A failed call: its status code (never HYBRID_OK) and what went wrong.
struct Error {
  hybrid_status code = HYBRID_INTERNAL;
  std::string message;
};

// Either a T or an Error. Check it (`if (!result)`) before reading the value.
template <typename T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Expected(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // The value; expects ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  // The error; expects !ok().
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// The result of a call that returns nothing but can fail.
template <>
class Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

namespace detail {

inline Error LastError(hybrid_status code) { return Error{code, hybrid_last_error()}; }

inline Expected<void> Check(hybrid_status code) {
  if (code == HYBRID_OK) return {};
  return LastError(code);
}

}  // namespace detail

// The library's version at run time, "MAJOR.MINOR.PATCH".
inline std::string Version() { return hybrid_version(); }

// The model file format version the library reads.
inline int ModelFormatVersion() { return hybrid_model_format_version(); }

// A named output of a model: an exit, the final classifier, the router or another tensor.
struct Output {
  std::string name;
  std::string kind;  // "exit", "final", "router" or "other"
};

// A tensor the cloud partition reads, with the floats it holds per sample.
struct CloudInput {
  std::string name;
  int64_t values_per_sample = 0;
};

// A loaded model file. Copies share the loaded model; it is immutable and safe to share between
// threads.
class Model {
 public:
  // Loads (memory-maps and verifies) a model file.
  static Expected<Model> Load(const std::string& path) {
    hybrid_model* m = nullptr;
    if (hybrid_status s = hybrid_model_load(path.c_str(), &m); s != HYBRID_OK) {
      return detail::LastError(s);
    }
    return Model(m);
  }

  // Loads a model from bytes the caller owns and keeps unchanged as long as the model and every
  // session and cloud made from it exist.
  static Expected<Model> FromMemory(const void* data, size_t size) {
    hybrid_model* m = nullptr;
    if (hybrid_status s = hybrid_model_load_from_memory(data, size, &m); s != HYBRID_OK) {
      return detail::LastError(s);
    }
    return Model(m);
  }

  std::string name() const {
    const char* n = "";
    hybrid_model_name(get(), &n);
    return n;
  }
  // The input image's height, width and channels; pixels() per image.
  int height() const { return Shape()[0]; }
  int width() const { return Shape()[1]; }
  int channels() const { return Shape()[2]; }
  size_t pixels() const {
    const auto s = Shape();
    return static_cast<size_t>(s[0]) * s[1] * s[2];
  }
  int classes() const {
    int32_t c = 0;
    hybrid_model_classes(get(), &c);
    return c;
  }
  std::string class_name(int index) const {
    const char* n = "";
    if (hybrid_model_class_name(get(), index, &n) != HYBRID_OK) return std::to_string(index);
    return n;
  }
  std::vector<Output> outputs() const {
    int32_t n = 0;
    hybrid_model_output_count(get(), &n);
    std::vector<Output> out;
    for (int32_t i = 0; i < n; ++i) {
      const char *name = "", *kind = "";
      hybrid_model_output(get(), i, &name, &kind);
      out.push_back({name, kind});
    }
    return out;
  }
  std::vector<CloudInput> cloud_inputs() const {
    int32_t n = 0;
    hybrid_model_cloud_input_count(get(), &n);
    std::vector<CloudInput> out;
    for (int32_t i = 0; i < n; ++i) {
      const char* name = "";
      int64_t values = 0;
      hybrid_model_cloud_input(get(), i, &name, &values);
      out.push_back({name, values});
    }
    return out;
  }

  const hybrid_model* get() const { return handle_.get(); }

 private:
  explicit Model(hybrid_model* m) : handle_(m, hybrid_model_destroy) {}
  std::vector<int32_t> Shape() const {
    std::vector<int32_t> s(3, 0);
    hybrid_model_input_shape(get(), &s[0], &s[1], &s[2]);
    return s;
  }
  std::shared_ptr<hybrid_model> handle_;
};

// What a transport carries to the cloud for `count` samples: per cloud input (in the order of
// Model::cloud_inputs), count * values_per_sample floats.
struct CloudRequest {
  int count = 0;
  std::vector<const float*> inputs;
  std::vector<int64_t> values_per_sample;
};

// Runs the cloud partition for a request and writes count * classes probabilities. An error with
// HYBRID_UNAVAILABLE makes the session answer from the edge, flagged degraded; any other error
// fails the classify call.
using Transport =
    std::function<Expected<void>(const CloudRequest& request, float* probabilities, int classes)>;

struct SessionOptions {
  std::string edge_backend = "native";   // native, onednn, xnnpack or ref
  std::string cloud_backend = "onednn";  // the in-process cloud's backend
  int threads = 0;                       // 0: every core
  int batch = 1;                         // images through the edge partition at once
  std::string exit;                      // the output answering at the edge; empty: the model's own
  std::string router;     // learned, entropy, maxprob or margin; empty: the model's own
  float threshold = 0.f;  // scores at or below stay at the edge (+inf: all, -inf: none)
  bool abstain = false;   // above the threshold: no answer instead of the cloud's
  Transport transport;    // empty: the cloud partition in this process (or `cloud`)
  // Hybrid servers to reach over gRPC, "HOST:PORT[,HOST:PORT...]"; empty: in this process. When
  // none answers within the deadline the edge answers, flagged degraded.
  std::string cloud;
  int cloud_deadline_ms = 0;                  // per request; 0: 2000
  std::string cloud_token;                    // bearer token the servers require
  std::string cloud_tls_ca;                   // PEM file: TLS, trusting this CA
  std::string cloud_tls_cert, cloud_tls_key;  // PEM files: a client certificate
};

enum class Where { kEdge = HYBRID_EDGE, kCloud = HYBRID_CLOUD, kAbstain = HYBRID_ABSTAIN };

struct Answer {
  int label = -1;          // the class answered, -1 when abstaining
  float confidence = 0.f;  // its probability
  Where where = Where::kEdge;
  float score = 0.f;      // the router's score (higher: less confident at the edge)
  bool degraded = false;  // meant for the cloud, which could not answer: the edge's answer
  // Milliseconds of the batch this input was in: edge partition and router, transport and cloud,
  // and the whole.
  double edge_ms = 0, cloud_ms = 0, total_ms = 0;
};

namespace detail {

// Fills C options from C++ ones.
class Options {
 public:
  Options() { hybrid_options_create(&o_); }
  ~Options() { hybrid_options_destroy(o_); }
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;

  Expected<void> Set(const SessionOptions& s, hybrid_transport_fn fn, void* user) {
    if (o_ == nullptr) return LastError(HYBRID_OUT_OF_MEMORY);
    // One call after another, so that the message read is the failing call's.
    hybrid_status code = hybrid_options_set_edge_backend(o_, s.edge_backend.c_str());
    if (code == HYBRID_OK) code = hybrid_options_set_cloud_backend(o_, s.cloud_backend.c_str());
    if (code == HYBRID_OK) code = hybrid_options_set_threads(o_, s.threads);
    if (code == HYBRID_OK) code = hybrid_options_set_batch(o_, s.batch);
    if (code == HYBRID_OK) code = hybrid_options_set_exit(o_, s.exit.c_str());
    if (code == HYBRID_OK && !s.router.empty()) {
      code = hybrid_options_set_router(o_, s.router.c_str());
    }
    if (code == HYBRID_OK) code = hybrid_options_set_threshold(o_, s.threshold);
    if (code == HYBRID_OK) code = hybrid_options_set_abstain(o_, s.abstain ? 1 : 0);
    if (code == HYBRID_OK) code = hybrid_options_set_transport(o_, fn, user);
    if (code == HYBRID_OK && !s.cloud.empty()) {
      code = hybrid_options_set_cloud(o_, s.cloud.c_str(), s.cloud_deadline_ms);
    }
    if (code == HYBRID_OK && !s.cloud_token.empty()) {
      code = hybrid_options_set_cloud_token(o_, s.cloud_token.c_str());
    }
    if (code == HYBRID_OK && !s.cloud_tls_ca.empty()) {
      code = hybrid_options_set_cloud_tls(
          o_, s.cloud_tls_ca.c_str(), s.cloud_tls_cert.empty() ? nullptr : s.cloud_tls_cert.c_str(),
          s.cloud_tls_key.empty() ? nullptr : s.cloud_tls_key.c_str());
    }
    return Check(code);
  }
  const hybrid_options* get() const { return o_; }

 private:
  hybrid_options* o_ = nullptr;
};

// Calls a C++ Transport from the C callback; no exception escapes into the library.
inline hybrid_status CallTransport(void* user, int32_t count, int32_t num_inputs,
                                   const float* const* inputs, const int64_t* sizes,
                                   float* probabilities, int32_t classes) {
  try {
    const Transport& t = *static_cast<const Transport*>(user);
    CloudRequest request;
    request.count = count;
    request.inputs.assign(inputs, inputs + num_inputs);
    request.values_per_sample.assign(sizes, sizes + num_inputs);
    Expected<void> r = t(request, probabilities, classes);
    if (r) return HYBRID_OK;
    hybrid_transport_error(r.error().message.c_str());
    return r.error().code == HYBRID_OK ? HYBRID_INTERNAL : r.error().code;
  } catch (const std::exception& e) {
    hybrid_transport_error(e.what());
    return HYBRID_INTERNAL;
  } catch (...) {
    hybrid_transport_error("the transport threw an exception");
    return HYBRID_INTERNAL;
  }
}

}  // namespace detail

// A session: the edge partition, the router and a transport to the cloud, planned once. Movable,
// not copyable; used by one thread at a time.
class Session {
 public:
  static Expected<Session> Create(const Model& model, SessionOptions options = {}) {
    // The transport lives on the heap so that its address, given to the library, survives moves.
    auto transport = options.transport ? std::make_unique<Transport>(std::move(options.transport))
                                       : std::unique_ptr<Transport>();
    detail::Options o;
    Expected<void> set =
        o.Set(options, transport ? &detail::CallTransport : nullptr, transport.get());
    if (!set) return set.error();
    hybrid_session* s = nullptr;
    if (hybrid_status code = hybrid_session_create(model.get(), o.get(), &s); code != HYBRID_OK) {
      return detail::LastError(code);
    }
    return Session(s, std::move(transport));
  }

  // Classifies `count` images of u8 pixels (NHWC, model.pixels() each, `size` bytes in all).
  Expected<std::vector<Answer>> Classify(const uint8_t* pixels, size_t size, int count) {
    std::vector<hybrid_answer> raw(count > 0 ? static_cast<size_t>(count) : 0);
    hybrid_status code = hybrid_session_classify(handle_.get(), pixels, size, count, raw.data());
    if (code != HYBRID_OK) return detail::LastError(code);
    std::vector<Answer> out(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      out[i] = {raw[i].label,    raw[i].confidence,    static_cast<Where>(raw[i].where),
                raw[i].score,    raw[i].degraded != 0, raw[i].edge_ms,
                raw[i].cloud_ms, raw[i].total_ms};
    }
    return out;
  }

  // Moves the threshold (a new operating point).
  Expected<void> SetThreshold(float threshold) {
    return detail::Check(hybrid_session_set_threshold(handle_.get(), threshold));
  }

  // The output that answers at the edge and the router in use.
  std::string exit() const {
    const char* e = "";
    hybrid_session_exit(handle_.get(), &e);
    return e;
  }
  std::string router() const {
    const char* r = "";
    hybrid_session_router(handle_.get(), &r);
    return r;
  }

  hybrid_session* get() const { return handle_.get(); }

 private:
  Session(hybrid_session* s, std::unique_ptr<Transport> transport)
      : transport_(std::move(transport)), handle_(s, hybrid_session_destroy) {}
  // Declared first so that the session, which calls it, is destroyed before it.
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<hybrid_session, hybrid_status (*)(hybrid_session*)> handle_;
};

// The cloud partition of a model, planned once: what the far side of a custom Transport runs.
class Cloud {
 public:
  // Uses the options' cloud backend, threads and batch.
  static Expected<Cloud> Create(const Model& model, const SessionOptions& options = {}) {
    detail::Options o;
    SessionOptions plain = options;
    plain.transport = nullptr;
    Expected<void> set = o.Set(plain, nullptr, nullptr);
    if (!set) return set.error();
    hybrid_cloud* c = nullptr;
    if (hybrid_status code = hybrid_cloud_create(model.get(), o.get(), &c); code != HYBRID_OK) {
      return detail::LastError(code);
    }
    return Cloud(c);
  }

  // Runs a request; writes request.count * classes probabilities.
  Expected<void> Run(const CloudRequest& request, float* probabilities, int classes) {
    if (request.inputs.size() != request.values_per_sample.size()) {
      return Error{HYBRID_INVALID_ARGUMENT,
                   "Cloud::Run: the request has " + std::to_string(request.inputs.size()) +
                       " inputs but " + std::to_string(request.values_per_sample.size()) +
                       " sizes"};
    }
    return detail::Check(hybrid_cloud_run(
        handle_.get(), request.count, static_cast<int32_t>(request.inputs.size()),
        request.inputs.data(), request.values_per_sample.data(), probabilities, classes));
  }

  hybrid_cloud* get() const { return handle_.get(); }

 private:
  explicit Cloud(hybrid_cloud* c) : handle_(c, hybrid_cloud_destroy) {}
  std::unique_ptr<hybrid_cloud, hybrid_status (*)(hybrid_cloud*)> handle_;
};

}  // namespace hybrid

#endif  // HYBRID_HYBRID_HPP_
