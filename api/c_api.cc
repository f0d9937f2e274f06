// The C API (include/hybrid/hybrid.h) over the engine's HybridSession. Every entry point checks
// its arguments, catches every exception and turns failures into a status and a thread-local
// message; handles are checked against registries of live objects without being dereferenced, so
// a destroyed handle is refused instead of read.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/backend.h"
#include "engine/session.h"
#include "graph/model_file.h"
#include "graph/partition.h"
#include "hybrid/hybrid.h"
#include "net/client.h"
#include "router/router.h"

namespace {

namespace engine = hybrid::engine;
namespace graph = hybrid::graph;

static_assert(HYBRID_MODEL_FORMAT_VERSION == graph::kModelFormatVersion,
              "version.h and graph/model_file.h disagree on the model format version");

// Bounds that keep a bad argument from turning into an unbounded allocation.
constexpr int32_t kMaxBatch = 4096;
constexpr int32_t kMaxThreads = 1024;

thread_local std::string last_error;
thread_local uint64_t failures = 0;  // failing calls on this thread, to see a callback's errors

hybrid_status Fail(hybrid_status code, const char* where, const std::string& message) {
  last_error = std::string(where) + ": " + message;
  ++failures;
  return code;
}

// Runs an entry point's body; no exception crosses the C boundary.
template <typename Body>
hybrid_status Guard(const char* where, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fail(HYBRID_OUT_OF_MEMORY, where, "out of memory");
  } catch (const std::exception& e) {
    return Fail(HYBRID_INTERNAL, where, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return Fail(HYBRID_INTERNAL, where, "unexpected exception");
  }
}

// The live handles of one kind. Lookups compare addresses only.
template <typename T>
class Registry {
 public:
  void Add(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(p);
  }
  bool Remove(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.erase(p) == 1;
  }
  bool Has(const T* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.count(p) == 1;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const T*> live_;
};

template <typename T>
Registry<T>& Live() {
  static auto* registry = new Registry<T>();  // never destroyed: handles may outlive exit order
  return *registry;
}

template <typename T>
hybrid_status CheckHandle(const T* p, const char* where, const char* kind) {
  if (p == nullptr) return Fail(HYBRID_INVALID_ARGUMENT, where, std::string(kind) + " is NULL");
  if (!Live<T>().Has(p)) {
    return Fail(HYBRID_INVALID_ARGUMENT, where,
                std::string(kind) + " is not a live handle (destroyed, or not a " + kind + ")");
  }
  return HYBRID_OK;
}

#define HYBRID_CHECK(expr)                      \
  do {                                          \
    const hybrid_status check_s_ = (expr);      \
    if (check_s_ != HYBRID_OK) return check_s_; \
  } while (0)

hybrid_status NotNull(const void* p, const char* where, const char* name) {
  if (p == nullptr) return Fail(HYBRID_INVALID_ARGUMENT, where, std::string(name) + " is NULL");
  return HYBRID_OK;
}

// Marks a session or cloud as running; a second thread is refused instead of racing.
class BusyGuard {
 public:
  explicit BusyGuard(std::atomic<bool>* busy) : busy_(busy), took_(!busy->exchange(true)) {}
  ~BusyGuard() {
    if (took_) busy_->store(false);
  }
  bool took() const { return took_; }

 private:
  std::atomic<bool>* busy_;
  bool took_;
};

// The classifier whose width is the model's number of classes: the final output, else the exit
// that answers at the edge.
int32_t ClassesOf(const graph::Graph& g) {
  for (const graph::NamedOutput& o : g.outputs) {
    if (o.kind == graph::OutputKind::kFinal)
      return static_cast<int32_t>(g.tensors[o.tensor].shape.back());
  }
  const std::string exit = engine::DefaultExit(g);
  if (exit.empty()) return 0;
  return static_cast<int32_t>(g.tensors[g.FindOutput(exit)->tensor].shape.back());
}

// A sessions' transport that calls the application's function.
class CallbackTransport : public engine::Transport {
 public:
  CallbackTransport(hybrid_transport_fn fn, void* user, int32_t classes)
      : fn_(fn), user_(user), classes_(classes) {}

  hybrid::Status Infer(const engine::CloudRequest& request, std::span<float> out,
                       engine::CloudReply* reply) override {
    *reply = engine::CloudReply{};
    pointers_.clear();
    sizes_.clear();
    for (const std::span<const float>& in : request.inputs) {
      pointers_.push_back(in.data());
      sizes_.push_back(request.count > 0 ? static_cast<int64_t>(in.size()) / request.count : 0);
    }
    const uint64_t before = failures;
    code_ = fn_(user_, request.count, static_cast<int32_t>(pointers_.size()), pointers_.data(),
                sizes_.data(), out.data(), classes_);
    if (code_ == HYBRID_OK) return hybrid::Status::Ok();
    // A hybrid call that failed inside the function (hybrid_cloud_run, say) or
    // hybrid_transport_error said why.
    const std::string why = failures != before ? last_error : std::string("no message");
    if (code_ == HYBRID_UNAVAILABLE) {  // the edge answers instead, flagged degraded
      reply->answered = false;
      reply->reason = why;
      code_ = HYBRID_OK;
      return hybrid::Status::Ok();
    }
    return hybrid::Error("the transport returned {} ({})", hybrid_status_name(code_), why);
  }

  hybrid_status code() const { return code_; }

 private:
  hybrid_transport_fn fn_;
  void* user_;
  int32_t classes_;
  hybrid_status code_ = HYBRID_OK;
  std::vector<const float*> pointers_;
  std::vector<int64_t> sizes_;
};

}  // namespace

struct hybrid_model {
  std::shared_ptr<const graph::Graph> graph;
  std::vector<std::string> class_names, output_names, output_kinds, cloud_inputs;
  std::vector<int64_t> cloud_sizes;
  int32_t classes = 0;
};

struct hybrid_options {
  engine::SessionOptions session;
  hybrid_transport_fn transport = nullptr;
  void* user_data = nullptr;
  hybrid::net::ClientOptions cloud;  // endpoints empty: the in-process cloud
};

struct hybrid_session {
  std::unique_ptr<engine::HybridSession> session;
  bool remote = false;  // over the network transport: its errors are the cloud's refusals
  CallbackTransport* callback = nullptr;  // owned by the session, when the application's
  std::string exit, router;
  int64_t pixels_per_image = 0;
  std::vector<engine::Answer> answers;
  std::atomic<bool> busy{false};
};

struct hybrid_cloud {
  std::unique_ptr<engine::Transport> transport;
  std::vector<int64_t> sizes;
  int32_t classes = 0;
  std::atomic<bool> busy{false};
};

namespace {

template <typename T>
T* Register(std::unique_ptr<T> object) {
  T* p = object.release();
  Live<T>().Add(p);
  return p;
}

template <typename T>
hybrid_status Destroy(T* p, const char* where, const char* kind) {
  if (p == nullptr) return HYBRID_OK;
  if (!Live<T>().Remove(p)) {
    return Fail(
        HYBRID_INVALID_ARGUMENT, where,
        std::string(kind) + " is not a live handle (destroyed twice, or not a " + kind + ")");
  }
  delete p;
  return HYBRID_OK;
}

hybrid_status MakeModel(hybrid::Result<graph::Graph> loaded, const char* where,
                        hybrid_model** out) {
  if (!loaded.ok()) return Fail(HYBRID_INVALID_MODEL, where, loaded.message());
  auto m = std::make_unique<hybrid_model>();
  m->graph = std::make_shared<const graph::Graph>(std::move(loaded).value());
  const graph::Graph& g = *m->graph;
  if (g.inputs.empty() || g.tensors[g.inputs[0]].shape.size() != 4) {
    return Fail(HYBRID_UNSUPPORTED, where, "the model's first input is not an image [N, H, W, C]");
  }
  m->classes = ClassesOf(g);
  if (m->classes <= 0) {
    return Fail(HYBRID_UNSUPPORTED, where, "the model has neither a final classifier nor an exit");
  }
  for (int32_t c = 0; c < m->classes; ++c) {
    m->class_names.push_back(c < static_cast<int32_t>(g.class_names.size()) ? g.class_names[c]
                                                                            : std::to_string(c));
  }
  for (const graph::NamedOutput& o : g.outputs) {
    m->output_names.push_back(o.name);
    m->output_kinds.emplace_back(graph::ToString(o.kind));
  }
  for (graph::TensorId t : graph::PartitionInputs(g, graph::Partition::kCloud)) {
    m->cloud_inputs.push_back(g.tensors[t].name);
    const graph::Shape& s = g.tensors[t].shape;
    m->cloud_sizes.push_back(graph::NumElements(graph::Shape(s.begin() + 1, s.end())));
  }
  *out = Register(std::move(m));
  return HYBRID_OK;
}

hybrid_status SetBackend(hybrid_options* options, const char* backend, std::string* field,
                         const char* where) {
  HYBRID_CHECK(CheckHandle(options, where, "options"));
  HYBRID_CHECK(NotNull(backend, where, "backend"));
  const auto& names = engine::BackendNames();
  if (std::find(names.begin(), names.end(), backend) == names.end()) {
    return Fail(
        HYBRID_INVALID_ARGUMENT, where,
        std::string("unknown backend '") + backend + "' (expected native, onednn, xnnpack or ref)");
  }
  *field = backend;
  return HYBRID_OK;
}

// Checks the arguments of a cloud run (or a transport call) against the model.
hybrid_status CheckCloudArgs(const hybrid_cloud* c, int32_t count, int32_t num_inputs,
                             const float* const* inputs, const int64_t* sizes,
                             const float* probabilities, int32_t classes, const char* where) {
  if (count < 0) return Fail(HYBRID_INVALID_ARGUMENT, where, "count is negative");
  if (num_inputs != static_cast<int32_t>(c->sizes.size())) {
    return Fail(HYBRID_INVALID_ARGUMENT, where,
                "the cloud reads " + std::to_string(c->sizes.size()) + " inputs, not " +
                    std::to_string(num_inputs));
  }
  if (classes != c->classes) {
    return Fail(
        HYBRID_INVALID_ARGUMENT, where,
        "the model has " + std::to_string(c->classes) + " classes, not " + std::to_string(classes));
  }
  if (count == 0) return HYBRID_OK;
  HYBRID_CHECK(NotNull(probabilities, where, "probabilities"));
  if (num_inputs > 0) {
    HYBRID_CHECK(NotNull(inputs, where, "inputs"));
    HYBRID_CHECK(NotNull(sizes, where, "sizes"));
  }
  for (int32_t i = 0; i < num_inputs; ++i) {
    if (inputs[i] == nullptr) {
      return Fail(HYBRID_INVALID_ARGUMENT, where, "inputs[" + std::to_string(i) + "] is NULL");
    }
    if (sizes[i] != c->sizes[i]) {
      return Fail(HYBRID_INVALID_ARGUMENT, where,
                  "cloud input " + std::to_string(i) + " holds " + std::to_string(c->sizes[i]) +
                      " values per sample, not " + std::to_string(sizes[i]));
    }
  }
  return HYBRID_OK;
}

}  // namespace

extern "C" {

const char* hybrid_version(void) { return HYBRID_VERSION_STRING; }

int32_t hybrid_model_format_version(void) { return HYBRID_MODEL_FORMAT_VERSION; }

const char* hybrid_last_error(void) { return last_error.c_str(); }

const char* hybrid_status_name(hybrid_status status) {
  switch (status) {
    case HYBRID_OK:
      return "HYBRID_OK";
    case HYBRID_INVALID_ARGUMENT:
      return "HYBRID_INVALID_ARGUMENT";
    case HYBRID_NOT_FOUND:
      return "HYBRID_NOT_FOUND";
    case HYBRID_INVALID_MODEL:
      return "HYBRID_INVALID_MODEL";
    case HYBRID_UNSUPPORTED:
      return "HYBRID_UNSUPPORTED";
    case HYBRID_UNAVAILABLE:
      return "HYBRID_UNAVAILABLE";
    case HYBRID_BUSY:
      return "HYBRID_BUSY";
    case HYBRID_OUT_OF_MEMORY:
      return "HYBRID_OUT_OF_MEMORY";
    case HYBRID_INTERNAL:
      return "HYBRID_INTERNAL";
    case HYBRID_REFUSED:
      return "HYBRID_REFUSED";
  }
  return "unknown";
}

hybrid_status hybrid_model_load(const char* path, hybrid_model** model) {
  constexpr const char* kWhere = "hybrid_model_load";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(NotNull(path, kWhere, "path"));
    HYBRID_CHECK(NotNull(model, kWhere, "model"));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      return Fail(HYBRID_NOT_FOUND, kWhere,
                  std::string("cannot open '") + path + "': " + std::strerror(err));
    }
    ::close(fd);
    return MakeModel(graph::LoadModelFile(path), kWhere, model);
  });
}

hybrid_status hybrid_model_load_from_memory(const void* data, size_t size, hybrid_model** model) {
  constexpr const char* kWhere = "hybrid_model_load_from_memory";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(NotNull(data, kWhere, "data"));
    HYBRID_CHECK(NotNull(model, kWhere, "model"));
    return MakeModel(graph::LoadModelFromMemory(data, size), kWhere, model);
  });
}

hybrid_status hybrid_model_destroy(hybrid_model* model) {
  return Guard("hybrid_model_destroy",
               [&] { return Destroy(model, "hybrid_model_destroy", "model"); });
}

hybrid_status hybrid_model_name(const hybrid_model* model, const char** name) {
  constexpr const char* kWhere = "hybrid_model_name";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(name, kWhere, "name"));
    *name = model->graph->name.c_str();
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_input_shape(const hybrid_model* model, int32_t* height, int32_t* width,
                                       int32_t* channels) {
  constexpr const char* kWhere = "hybrid_model_input_shape";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(height, kWhere, "height"));
    HYBRID_CHECK(NotNull(width, kWhere, "width"));
    HYBRID_CHECK(NotNull(channels, kWhere, "channels"));
    const graph::Graph& g = *model->graph;
    const graph::Shape& s = g.tensors[g.inputs[0]].shape;
    *height = static_cast<int32_t>(s[1]);
    *width = static_cast<int32_t>(s[2]);
    *channels = static_cast<int32_t>(s[3]);
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_classes(const hybrid_model* model, int32_t* classes) {
  constexpr const char* kWhere = "hybrid_model_classes";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(classes, kWhere, "classes"));
    *classes = model->classes;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_class_name(const hybrid_model* model, int32_t index, const char** name) {
  constexpr const char* kWhere = "hybrid_model_class_name";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(name, kWhere, "name"));
    if (index < 0 || index >= model->classes) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "class " + std::to_string(index) + " is out of range [0, " +
                      std::to_string(model->classes) + ")");
    }
    *name = model->class_names[index].c_str();
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_output_count(const hybrid_model* model, int32_t* count) {
  constexpr const char* kWhere = "hybrid_model_output_count";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(count, kWhere, "count"));
    *count = static_cast<int32_t>(model->output_names.size());
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_output(const hybrid_model* model, int32_t index, const char** name,
                                  const char** kind) {
  constexpr const char* kWhere = "hybrid_model_output";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    if (index < 0 || index >= static_cast<int32_t>(model->output_names.size())) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "output " + std::to_string(index) + " is out of range [0, " +
                      std::to_string(model->output_names.size()) + ")");
    }
    if (name != nullptr) *name = model->output_names[index].c_str();
    if (kind != nullptr) *kind = model->output_kinds[index].c_str();
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_cloud_input_count(const hybrid_model* model, int32_t* count) {
  constexpr const char* kWhere = "hybrid_model_cloud_input_count";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    HYBRID_CHECK(NotNull(count, kWhere, "count"));
    *count = static_cast<int32_t>(model->cloud_inputs.size());
    return HYBRID_OK;
  });
}

hybrid_status hybrid_model_cloud_input(const hybrid_model* model, int32_t index, const char** name,
                                       int64_t* values_per_sample) {
  constexpr const char* kWhere = "hybrid_model_cloud_input";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    if (index < 0 || index >= static_cast<int32_t>(model->cloud_inputs.size())) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "cloud input " + std::to_string(index) + " is out of range [0, " +
                      std::to_string(model->cloud_inputs.size()) + ")");
    }
    if (name != nullptr) *name = model->cloud_inputs[index].c_str();
    if (values_per_sample != nullptr) *values_per_sample = model->cloud_sizes[index];
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_create(hybrid_options** options) {
  constexpr const char* kWhere = "hybrid_options_create";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(NotNull(options, kWhere, "options"));
    *options = Register(std::make_unique<hybrid_options>());
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_destroy(hybrid_options* options) {
  return Guard("hybrid_options_destroy",
               [&] { return Destroy(options, "hybrid_options_destroy", "options"); });
}

hybrid_status hybrid_options_set_edge_backend(hybrid_options* options, const char* backend) {
  constexpr const char* kWhere = "hybrid_options_set_edge_backend";
  return Guard(kWhere, [&] {
    return SetBackend(options, backend, options ? &options->session.edge_backend : nullptr, kWhere);
  });
}

hybrid_status hybrid_options_set_cloud_backend(hybrid_options* options, const char* backend) {
  constexpr const char* kWhere = "hybrid_options_set_cloud_backend";
  return Guard(kWhere, [&] {
    return SetBackend(options, backend, options ? &options->session.cloud_backend : nullptr,
                      kWhere);
  });
}

hybrid_status hybrid_options_set_threads(hybrid_options* options, int32_t threads) {
  constexpr const char* kWhere = "hybrid_options_set_threads";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    if (threads < 0 || threads > kMaxThreads) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "threads " + std::to_string(threads) + " is out of range [0, " +
                      std::to_string(kMaxThreads) + "]");
    }
    options->session.threads = threads;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_batch(hybrid_options* options, int32_t batch) {
  constexpr const char* kWhere = "hybrid_options_set_batch";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    if (batch < 1 || batch > kMaxBatch) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "batch " + std::to_string(batch) + " is out of range [1, " +
                      std::to_string(kMaxBatch) + "]");
    }
    options->session.batch = batch;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_exit(hybrid_options* options, const char* output) {
  constexpr const char* kWhere = "hybrid_options_set_exit";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    HYBRID_CHECK(NotNull(output, kWhere, "output"));
    options->session.exit = output;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_router(hybrid_options* options, const char* router) {
  constexpr const char* kWhere = "hybrid_options_set_router";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    HYBRID_CHECK(NotNull(router, kWhere, "router"));
    if (auto kind = hybrid::router::ParseScoreKind(router); !kind.ok()) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  std::string("unknown router '") + router +
                      "' (expected learned, entropy, maxprob or margin)");
    }
    options->session.router = router;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_threshold(hybrid_options* options, float threshold) {
  constexpr const char* kWhere = "hybrid_options_set_threshold";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    if (std::isnan(threshold)) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, "threshold is NaN");
    options->session.threshold = threshold;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_abstain(hybrid_options* options, int32_t abstain) {
  constexpr const char* kWhere = "hybrid_options_set_abstain";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    options->session.abstain = abstain != 0;
    return HYBRID_OK;
  });
}

void hybrid_transport_error(const char* message) {
  try {
    Fail(HYBRID_OK, "transport", message != nullptr ? message : "(no message)");
  } catch (...) {  // out of memory for the message: the status still says what happened
  }
}

hybrid_status hybrid_options_set_transport(hybrid_options* options, hybrid_transport_fn fn,
                                           void* user_data) {
  constexpr const char* kWhere = "hybrid_options_set_transport";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    options->transport = fn;
    options->user_data = fn != nullptr ? user_data : nullptr;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_cloud(hybrid_options* options, const char* endpoints,
                                       int32_t deadline_ms) {
  constexpr const char* kWhere = "hybrid_options_set_cloud";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    if (deadline_ms < 0) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, "deadline_ms is negative");
    if (endpoints == nullptr || *endpoints == '\0') {
      options->cloud.endpoints.clear();
      return HYBRID_OK;
    }
    auto parsed = hybrid::net::ParseEndpoints(endpoints);
    if (!parsed.ok()) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, parsed.message());
    options->cloud.endpoints = std::move(parsed).value();
    options->cloud.deadline_ms = deadline_ms > 0 ? deadline_ms : 2000;
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_cloud_token(hybrid_options* options, const char* token) {
  constexpr const char* kWhere = "hybrid_options_set_cloud_token";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    options->cloud.token = token != nullptr ? token : "";
    return HYBRID_OK;
  });
}

hybrid_status hybrid_options_set_cloud_tls(hybrid_options* options, const char* ca_file,
                                           const char* cert_file, const char* key_file) {
  constexpr const char* kWhere = "hybrid_options_set_cloud_tls";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    if (ca_file == nullptr && (cert_file != nullptr || key_file != nullptr)) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere, "a client certificate needs TLS (a CA file)");
    }
    if ((cert_file == nullptr) != (key_file == nullptr)) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  "a client certificate needs both cert_file and key_file");
    }
    options->cloud.tls_ca = ca_file != nullptr ? ca_file : "";
    options->cloud.tls_cert = cert_file != nullptr ? cert_file : "";
    options->cloud.tls_key = key_file != nullptr ? key_file : "";
    return HYBRID_OK;
  });
}

hybrid_status hybrid_session_create(const hybrid_model* model, const hybrid_options* options,
                                    hybrid_session** session) {
  constexpr const char* kWhere = "hybrid_session_create";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    if (options != nullptr) HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    HYBRID_CHECK(NotNull(session, kWhere, "session"));
    const hybrid_options defaults;
    const hybrid_options& o = options != nullptr ? *options : defaults;
    const graph::Graph& g = *model->graph;
    // The mistakes an application can correct get their own status before planning.
    if (!o.session.exit.empty() && g.FindOutput(o.session.exit) == nullptr) {
      return Fail(HYBRID_NOT_FOUND, kWhere, "the model has no output '" + o.session.exit + "'");
    }
    if (o.session.router == "learned") {
      bool has_router = false;
      for (const graph::NamedOutput& out : g.outputs) {
        has_router |= out.kind == graph::OutputKind::kRouter;
      }
      if (!has_router) {
        return Fail(HYBRID_UNSUPPORTED, kWhere, "the model has no learned router");
      }
    }
    auto s = std::make_unique<hybrid_session>();
    std::unique_ptr<engine::Transport> transport;
    if (o.transport != nullptr) {
      auto callback = std::make_unique<CallbackTransport>(o.transport, o.user_data, model->classes);
      s->callback = callback.get();
      transport = std::move(callback);
    } else if (!o.cloud.endpoints.empty()) {
      if (model->cloud_inputs.empty()) {
        return Fail(HYBRID_UNSUPPORTED, kWhere, "the model has no cloud partition to reach");
      }
      auto grpc = hybrid::net::GrpcTransport::Create(model->graph, o.cloud);
      if (!grpc.ok()) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, grpc.message());
      transport = std::move(grpc).value();
      s->remote = true;
    }
    auto created = engine::HybridSession::Create(model->graph, o.session, std::move(transport));
    if (!created.ok()) return Fail(HYBRID_UNSUPPORTED, kWhere, created.message());
    s->session = std::move(created).value();
    s->exit = s->session->exit();
    s->router = std::string(hybrid::router::ToString(s->session->score_kind()));
    const graph::Shape& in = g.tensors[g.inputs[0]].shape;
    s->pixels_per_image = in[1] * in[2] * in[3];
    *session = Register(std::move(s));
    return HYBRID_OK;
  });
}

hybrid_status hybrid_session_destroy(hybrid_session* session) {
  return Guard("hybrid_session_destroy", [&] {
    if (session != nullptr && Live<hybrid_session>().Has(session) && session->busy.load()) {
      return Fail(HYBRID_BUSY, "hybrid_session_destroy",
                  "the session is running on another thread");
    }
    return Destroy(session, "hybrid_session_destroy", "session");
  });
}

hybrid_status hybrid_session_classify(hybrid_session* session, const uint8_t* pixels, size_t size,
                                      int32_t count, hybrid_answer* answers) {
  constexpr const char* kWhere = "hybrid_session_classify";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(session, kWhere, "session"));
    if (count < 0) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, "count is negative");
    const uint64_t want =
        static_cast<uint64_t>(count) * static_cast<uint64_t>(session->pixels_per_image);
    if (size != want) {
      return Fail(HYBRID_INVALID_ARGUMENT, kWhere,
                  std::to_string(size) + " bytes of pixels for " + std::to_string(count) +
                      " images of " + std::to_string(session->pixels_per_image) +
                      " pixels each (expected " + std::to_string(want) + ")");
    }
    if (count == 0) return HYBRID_OK;
    HYBRID_CHECK(NotNull(pixels, kWhere, "pixels"));
    HYBRID_CHECK(NotNull(answers, kWhere, "answers"));
    BusyGuard busy(&session->busy);
    if (!busy.took()) {
      return Fail(HYBRID_BUSY, kWhere, "the session is running on another thread");
    }
    auto result = session->session->Classify(std::span<const uint8_t>(pixels, size), count);
    if (!result.ok()) {
      const hybrid_status code =
          session->callback != nullptr && session->callback->code() != HYBRID_OK
              ? session->callback->code()
          : session->remote ? HYBRID_REFUSED
                            : HYBRID_INTERNAL;
      return Fail(code, kWhere, result.message());
    }
    for (int32_t i = 0; i < count; ++i) {
      const engine::Answer& a = (*result)[i];
      hybrid_answer& out = answers[i];
      out.label = a.label;
      out.confidence = a.confidence;
      out.where = a.where == hybrid::router::Decision::kEdge    ? HYBRID_EDGE
                  : a.where == hybrid::router::Decision::kCloud ? HYBRID_CLOUD
                                                                : HYBRID_ABSTAIN;
      out.score = a.score;
      out.degraded = a.degraded ? 1 : 0;
      out.edge_ms = a.edge_ms;
      out.cloud_ms = a.cloud_ms;
      out.total_ms = a.total_ms;
    }
    return HYBRID_OK;
  });
}

hybrid_status hybrid_session_set_threshold(hybrid_session* session, float threshold) {
  constexpr const char* kWhere = "hybrid_session_set_threshold";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(session, kWhere, "session"));
    if (std::isnan(threshold)) return Fail(HYBRID_INVALID_ARGUMENT, kWhere, "threshold is NaN");
    BusyGuard busy(&session->busy);
    if (!busy.took()) {
      return Fail(HYBRID_BUSY, kWhere, "the session is running on another thread");
    }
    session->session->set_threshold(threshold);
    return HYBRID_OK;
  });
}

hybrid_status hybrid_session_exit(const hybrid_session* session, const char** output) {
  constexpr const char* kWhere = "hybrid_session_exit";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(session, kWhere, "session"));
    HYBRID_CHECK(NotNull(output, kWhere, "output"));
    *output = session->exit.c_str();
    return HYBRID_OK;
  });
}

hybrid_status hybrid_session_router(const hybrid_session* session, const char** router) {
  constexpr const char* kWhere = "hybrid_session_router";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(session, kWhere, "session"));
    HYBRID_CHECK(NotNull(router, kWhere, "router"));
    *router = session->router.c_str();
    return HYBRID_OK;
  });
}

hybrid_status hybrid_cloud_create(const hybrid_model* model, const hybrid_options* options,
                                  hybrid_cloud** cloud) {
  constexpr const char* kWhere = "hybrid_cloud_create";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(model, kWhere, "model"));
    if (options != nullptr) HYBRID_CHECK(CheckHandle(options, kWhere, "options"));
    HYBRID_CHECK(NotNull(cloud, kWhere, "cloud"));
    if (model->cloud_inputs.empty()) {
      return Fail(HYBRID_UNSUPPORTED, kWhere, "the model has no cloud partition");
    }
    const engine::SessionOptions defaults;
    const engine::SessionOptions& o = options != nullptr ? options->session : defaults;
    auto transport =
        engine::MakeInProcessTransport(model->graph, o.cloud_backend, o.batch, o.threads);
    if (!transport.ok()) return Fail(HYBRID_UNSUPPORTED, kWhere, transport.message());
    auto c = std::make_unique<hybrid_cloud>();
    c->transport = std::move(transport).value();
    c->sizes = model->cloud_sizes;
    c->classes = model->classes;
    *cloud = Register(std::move(c));
    return HYBRID_OK;
  });
}

hybrid_status hybrid_cloud_destroy(hybrid_cloud* cloud) {
  return Guard("hybrid_cloud_destroy", [&] {
    if (cloud != nullptr && Live<hybrid_cloud>().Has(cloud) && cloud->busy.load()) {
      return Fail(HYBRID_BUSY, "hybrid_cloud_destroy", "the cloud is running on another thread");
    }
    return Destroy(cloud, "hybrid_cloud_destroy", "cloud");
  });
}

hybrid_status hybrid_cloud_run(hybrid_cloud* cloud, int32_t count, int32_t num_inputs,
                               const float* const* inputs, const int64_t* sizes,
                               float* probabilities, int32_t classes) {
  constexpr const char* kWhere = "hybrid_cloud_run";
  return Guard(kWhere, [&] {
    HYBRID_CHECK(CheckHandle(cloud, kWhere, "cloud"));
    HYBRID_CHECK(
        CheckCloudArgs(cloud, count, num_inputs, inputs, sizes, probabilities, classes, kWhere));
    if (count == 0) return HYBRID_OK;
    BusyGuard busy(&cloud->busy);
    if (!busy.took()) return Fail(HYBRID_BUSY, kWhere, "the cloud is running on another thread");
    engine::CloudRequest request;
    request.count = count;
    for (int32_t i = 0; i < num_inputs; ++i) {
      request.inputs.emplace_back(inputs[i], static_cast<size_t>(count * sizes[i]));
    }
    engine::CloudReply reply;
    const hybrid::Status s = cloud->transport->Infer(
        request, std::span<float>(probabilities, static_cast<size_t>(count) * classes), &reply);
    if (!s.ok()) return Fail(HYBRID_INTERNAL, kWhere, s.message());
    return HYBRID_OK;
  });
}

}  // extern "C"
