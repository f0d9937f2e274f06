// A hybrid session: what an application embeds to classify inputs with a split model. It runs the
// edge partition (native backend by default), scores each input with a router, answers at the edge
// or sends the input's cloud-side tensors through a Transport to the cloud partition, and reports
// where each answer was made, the router's score and the time spent.
//
//   auto graph = std::make_shared<const graph::Graph>(*graph::LoadModelFile("model.hybrid"));
//   engine::SessionOptions options;                  // defaults suit the model's shape
//   options.threshold = 0.25f;                       // a threshold from `hybrid eval`
//   auto session = engine::HybridSession::Create(graph, options);
//   auto answers = (*session)->Classify(pixels, 1);  // u8 NHWC images
//   answers->at(0).label, answers->at(0).where, answers->at(0).score, answers->at(0).total_ms
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/executor.h"
#include "graph/ir.h"
#include "router/router.h"

namespace hybrid::engine {

// The tensors the cloud partition reads, for `count` samples, as float values (one span per
// cloud input, in the order of CloudInputs()).
struct CloudRequest {
  int count = 0;
  std::vector<std::span<const float>> inputs;
};

// What one call through a transport came to.
struct CloudReply {
  // False when the cloud could not answer (down, unreachable, too slow, its queue full): the
  // session then answers from the edge, flagged degraded. A request the cloud refuses as wrong (a
  // model mismatch) is an error of Infer instead.
  bool answered = true;
  std::string reason;  // why it was not answered
  int attempts = 0;    // calls made, retries on other endpoints included (0 in process)
  // Bytes of the request and reply messages, the call's wall time, and the part of it the server
  // reports for queueing and computing (the rest is network and encoding).
  double bytes_sent = 0, bytes_received = 0;
  double call_ms = 0, server_ms = 0;
};

// Carries requests to the cloud partition and its answers back: in-process (a direct call) or
// over the network (net/).
class Transport {
 public:
  virtual ~Transport() = default;
  // Runs the cloud partition on `request`; writes its final output, count rows of class
  // probabilities, into `out` and what happened into `reply`. An error means the request itself
  // is wrong; a cloud that cannot answer is reply->answered = false.
  virtual Status Infer(const CloudRequest& request, std::span<float> out, CloudReply* reply) = 0;
};

struct SessionOptions {
  std::string edge_backend = "native";
  std::string cloud_backend = "onednn";  // for the in-process cloud
  int threads = 0;                       // 0: every core
  int batch = 1;                         // inputs per Classify chunk
  // The output whose probabilities decide at the edge: empty picks the model's last exit (shape
  // A) or `edge` (shape B).
  std::string exit;
  // How inputs are scored: the learned router when the model has one, else the entropy.
  std::string router;
  // Scores at or below stay at the edge; +inf keeps everything at the edge, -inf sends all.
  float threshold = 0.f;
  bool abstain = false;  // above the threshold: no answer instead of the cloud's
};

struct Answer {
  int label = -1;          // the class answered, -1 when abstaining
  float confidence = 0.f;  // its probability
  router::Decision where = router::Decision::kEdge;
  float score = 0.f;  // the router's score (higher: less confident at the edge)
  // Meant for the cloud, which could not answer: the edge's answer (where is kEdge).
  bool degraded = false;
  // Milliseconds of the chunk this input was in: the edge partition and router, the transport and
  // cloud partition (0 when nothing was sent), and both with the copying between them.
  double edge_ms = 0, cloud_ms = 0, total_ms = 0;
};

// What a session's transport has done so far.
struct SessionStats {
  int64_t requests = 0;      // calls to the transport
  int64_t samples_sent = 0;  // inputs sent to the cloud
  int64_t degraded = 0;      // of those, answered by the edge because the cloud could not
  int64_t unanswered_requests = 0;
  int64_t attempts = 0;  // network calls, retries included
  double bytes_sent = 0, bytes_received = 0, call_ms = 0, server_ms = 0;
};

class HybridSession {
 public:
  // Plans the edge partition and, without `transport`, an in-process cloud. Every costly step
  // (planning, weight packing) happens here.
  static Result<std::unique_ptr<HybridSession>> Create(
      const std::shared_ptr<const graph::Graph>& graph, const SessionOptions& options,
      std::unique_ptr<Transport> transport = {});
  ~HybridSession();

  // Classifies `count` images given as pixels (u8, NHWC, the model's input shape), normalized with
  // the model's mean and std.
  Result<std::vector<Answer>> Classify(std::span<const uint8_t> pixels, int count);

  // Moves the threshold of the routing policy (a new operating point); not while classifying.
  void set_threshold(float threshold) { options_.threshold = threshold; }

  const SessionStats& stats() const { return stats_; }

  const graph::Graph& graph() const { return *graph_; }
  router::ScoreKind score_kind() const { return score_kind_; }
  const std::string& exit() const { return exit_; }
  // Names of the tensors the cloud partition reads.
  const std::vector<std::string>& cloud_inputs() const { return cloud_inputs_; }
  int classes() const { return classes_; }

 private:
  HybridSession() = default;
  float Score(int sample);

  std::shared_ptr<const graph::Graph> graph_;
  SessionOptions options_;
  std::unique_ptr<Executor> edge_;
  std::unique_ptr<Transport> transport_;
  router::ScoreKind score_kind_ = router::ScoreKind::kEntropy;
  std::unique_ptr<router::LearnedRouter> learned_;
  std::string exit_;
  std::vector<std::string> cloud_inputs_;
  int classes_ = 0;
  TensorView image_, probs_, logits_, pooled_;
  std::vector<float> scratch_;                // one row of logits from probabilities
  std::vector<TensorView> sent_;              // per cloud input: its edge-side buffer
  std::vector<std::vector<float>> gathered_;  // per cloud input: the rows being sent
  std::vector<float> cloud_out_;
  SessionStats stats_;
};

// One row of logits: from `logits` when it has data, else the log of `probs` (in `scratch`).
std::span<const float> LogitsRow(const TensorView& logits, const TensorView& probs, int classes,
                                 int i, std::vector<float>* scratch);

// The logits behind a named output: the input of the softmax that computes it, or -1 when the
// output is not a softmax (its scores then use the log of its values).
graph::TensorId LogitsOf(const graph::Graph& graph, const std::string& output);

// The output that decides at the edge when none is named: `edge` (a selective-query model) or the
// last exit; empty when the model has neither.
std::string DefaultExit(const graph::Graph& graph);

// How the edge sends a tensor the cloud reads, in its smallest exact form: the raw pixels of the
// image input, the integers (or signs) every cloud layer reading it quantizes it to, or floats.
struct WireTensor {
  enum class Form { kF32, kPixels, kInt8, kInt4, kInt2, kBits };
  std::string name;
  Form form = Form::kF32;
  int64_t values = 0;  // per sample
  double bytes = 0;    // per sample
  graph::Shape shape;  // per sample (the tensor's shape without the batch dimension)
  // kInt8 .. kBits: the quantization every cloud layer reading the tensor applies to it.
  graph::Quantization quant;
};
std::vector<WireTensor> CloudWire(const graph::Graph& graph);
std::string_view ToString(WireTensor::Form form);

// The cloud partition of `graph` in this process: an executor on `backend`, planned for up to
// `batch` samples a request.
Result<std::unique_ptr<Transport>> MakeInProcessTransport(std::shared_ptr<const graph::Graph> graph,
                                                          const std::string& backend, int batch,
                                                          int threads);

}  // namespace hybrid::engine
