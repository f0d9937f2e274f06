#include "engine/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/layer_params.h"
#include "graph/partition.h"

namespace hybrid::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

const graph::NamedOutput* OutputOfKind(const graph::Graph& g, graph::OutputKind kind,
                                       bool last = true) {
  const graph::NamedOutput* found = nullptr;
  for (const graph::NamedOutput& o : g.outputs) {
    if (o.kind == kind && (found == nullptr || last)) found = &o;
  }
  return found;
}

class InProcessTransport : public Transport {
 public:
  explicit InProcessTransport(std::unique_ptr<Executor> cloud, graph::TensorId final_tensor)
      : cloud_(std::move(cloud)), final_(final_tensor) {}

  Status Infer(const CloudRequest& request, std::span<float> out, CloudReply* reply) override {
    *reply = CloudReply{};
    const int batch = cloud_->options().batch;
    const auto& inputs = cloud_->inputs();
    if (request.inputs.size() != inputs.size()) {
      return Error("the cloud reads {} tensors, the request carries {}", inputs.size(),
                   request.inputs.size());
    }
    const TensorView final_view = cloud_->Tensor(final_);
    const int64_t classes = final_view.size() / batch;
    for (int first = 0; first < request.count; first += batch) {
      const int n = std::min(batch, request.count - first);
      for (size_t i = 0; i < inputs.size(); ++i) {
        const TensorView dst = cloud_->Tensor(inputs[i]);
        const int64_t per = dst.size() / batch;
        if (static_cast<int64_t>(request.inputs[i].size()) != per * request.count) {
          return Error("cloud input '{}': {} values for {} samples, expected {} each",
                       cloud_->graph().tensors[inputs[i]].name, request.inputs[i].size(),
                       request.count, per);
        }
        std::memcpy(dst.data, request.inputs[i].data() + first * per, sizeof(float) * n * per);
      }
      HYBRID_RETURN_IF_ERROR(cloud_->Run());
      std::memcpy(out.data() + first * classes, final_view.data, sizeof(float) * n * classes);
    }
    return Status::Ok();
  }

  const Executor& executor() const { return *cloud_; }

 private:
  std::unique_ptr<Executor> cloud_;
  graph::TensorId final_;
};

}  // namespace

Result<std::unique_ptr<Transport>> MakeInProcessTransport(std::shared_ptr<const graph::Graph> graph,
                                                          const std::string& backend, int batch,
                                                          int threads) {
  const graph::NamedOutput* final_out = OutputOfKind(*graph, graph::OutputKind::kFinal);
  if (final_out == nullptr) return Error("the model has no final classifier for the cloud");
  PlanOptions o;
  o.backend = backend;
  o.batch = batch;
  o.threads = threads;
  o.scope = Scope::kCloud;
  o.outputs = {final_out->name};
  HYBRID_ASSIGN_OR_RETURN(auto cloud, Executor::Create(std::move(graph), o));
  const graph::TensorId final_tensor = final_out->tensor;
  return std::unique_ptr<Transport>(
      std::make_unique<InProcessTransport>(std::move(cloud), final_tensor));
}

graph::TensorId LogitsOf(const graph::Graph& g, const std::string& output) {
  const graph::NamedOutput* o = g.FindOutput(output);
  if (o == nullptr) return -1;
  for (const graph::Node& n : g.nodes) {
    if (n.outputs[0] == o->tensor) return n.op == graph::OpType::kSoftmax ? n.inputs[0] : -1;
  }
  return -1;
}

std::string DefaultExit(const graph::Graph& g) {
  if (g.FindOutput("edge") != nullptr) return "edge";
  const graph::NamedOutput* e = OutputOfKind(g, graph::OutputKind::kExit);
  return e != nullptr ? e->name : std::string();
}

std::string_view ToString(WireTensor::Form form) {
  switch (form) {
    case WireTensor::Form::kF32:
      return "f32";
    case WireTensor::Form::kPixels:
      return "pixels";
    case WireTensor::Form::kInt8:
      return "int8";
    case WireTensor::Form::kInt4:
      return "int4";
    case WireTensor::Form::kInt2:
      return "int2";
    case WireTensor::Form::kBits:
      return "bits";
  }
  return "?";
}

std::vector<WireTensor> CloudWire(const graph::Graph& g) {
  std::vector<WireTensor> wire;
  for (graph::TensorId t : graph::PartitionInputs(g, graph::Partition::kCloud)) {
    WireTensor w;
    w.name = g.tensors[t].name;
    const graph::Shape& shape = g.tensors[t].shape;
    w.shape = graph::Shape(shape.begin() + 1, shape.end());
    w.values = graph::NumElements(w.shape);
    w.bytes = 4.0 * static_cast<double>(w.values);
    if (!g.inputs.empty() && t == g.inputs[0]) {
      w.form = WireTensor::Form::kPixels;
      w.bytes = static_cast<double>(w.values);
      wire.push_back(w);
      continue;
    }
    // The form every cloud layer reading the tensor quantizes it to, if they agree.
    bool first = true, agree = true;
    graph::Quantization seen;
    for (const graph::Node& n : g.nodes) {
      if (n.partition != graph::Partition::kCloud ||
          std::find(n.inputs.begin(), n.inputs.end(), t) == n.inputs.end()) {
        continue;
      }
      const graph::Quantization* q = QuantizationOf(n);
      const bool quantized =
          q != nullptr && n.inputs[0] == t &&
          (IsIntegerLayer(*q) || (q->activation_precision == graph::Precision::kBinary));
      if (!quantized) {
        agree = false;
        break;
      }
      const bool same =
          first ||
          (q->activation_precision == seen.activation_precision && q->act_scale == seen.act_scale &&
           q->act_zero_point == seen.act_zero_point && q->act_signed == seen.act_signed);
      if (!same) {
        agree = false;
        break;
      }
      seen = *q;
      first = false;
    }
    if (agree && !first) {
      const int bits = graph::Bits(seen.activation_precision);
      w.form = bits == 1   ? WireTensor::Form::kBits
               : bits == 2 ? WireTensor::Form::kInt2
               : bits == 4 ? WireTensor::Form::kInt4
                           : WireTensor::Form::kInt8;
      // Each sample starts on a byte.
      const int64_t bytes = (w.values * bits + 7) / 8;
      w.bytes = static_cast<double>(bytes);
      w.quant = seen;
    }
    wire.push_back(w);
  }
  return wire;
}

HybridSession::~HybridSession() = default;

Result<std::unique_ptr<HybridSession>> HybridSession::Create(
    const std::shared_ptr<const graph::Graph>& g, const SessionOptions& options,
    std::unique_ptr<Transport> transport) {
  if (g == nullptr) return Error("no model");
  if (options.batch < 1) return Error("batch {} is not positive", options.batch);
  std::unique_ptr<HybridSession> s(new HybridSession());
  s->graph_ = g;
  s->options_ = options;
  const bool has_router = OutputOfKind(*g, graph::OutputKind::kRouter) != nullptr;
  // The deciding output.
  s->exit_ = options.exit.empty() ? DefaultExit(*g) : options.exit;
  if (s->exit_.empty()) return Error("the model has no exit to decide at the edge");
  const graph::NamedOutput* exit = g->FindOutput(s->exit_);
  if (exit == nullptr) return Error("the model has no output '{}'", s->exit_);
  // The router.
  const std::string router =
      options.router.empty() ? (has_router ? "learned" : "entropy") : options.router;
  HYBRID_ASSIGN_OR_RETURN(s->score_kind_, router::ParseScoreKind(router));
  if (s->score_kind_ == router::ScoreKind::kLearned) {
    HYBRID_ASSIGN_OR_RETURN(router::LearnedRouter learned, router::LearnedRouter::FromGraph(*g));
    s->learned_ = std::make_unique<router::LearnedRouter>(std::move(learned));
  }
  // The edge plan computes the deciding output, the router's pooled features and what the cloud
  // reads from the edge side.
  PlanOptions eo;
  eo.backend = options.edge_backend;
  eo.batch = options.batch;
  eo.threads = options.threads;
  eo.scope = Scope::kEdge;
  eo.outputs = {s->exit_};
  const graph::TensorId logits = LogitsOf(*g, s->exit_);
  if (logits >= 0) eo.outputs.push_back(g->tensors[logits].name);
  if (s->learned_ && s->learned_->pooled()) {
    if (g->FindOutput("edge.pooled") == nullptr) {
      return Error("the learned router reads 'edge.pooled', which the model does not name");
    }
    eo.outputs.push_back("edge.pooled");
  }
  const graph::TensorId image = g->inputs.empty() ? -1 : g->inputs[0];
  if (image < 0 || g->tensors[image].shape.size() != 4) {
    return Error("the model's first input is not an image [N, H, W, C]");
  }
  for (graph::TensorId t : graph::PartitionInputs(*g, graph::Partition::kCloud)) {
    s->cloud_inputs_.push_back(g->tensors[t].name);
    if (t != image) eo.outputs.push_back(g->tensors[t].name);
  }
  HYBRID_ASSIGN_OR_RETURN(s->edge_, Executor::Create(g, eo));
  if (std::find(s->edge_->inputs().begin(), s->edge_->inputs().end(), image) ==
      s->edge_->inputs().end()) {
    return Error("the edge partition does not read the image input '{}'", g->tensors[image].name);
  }
  s->image_ = s->edge_->Tensor(image);
  s->probs_ = s->edge_->Tensor(exit->tensor);
  s->classes_ = static_cast<int>(s->probs_.size() / options.batch);
  if (logits >= 0) s->logits_ = s->edge_->Tensor(logits);
  s->scratch_.resize(s->classes_);
  if (s->learned_ && s->learned_->pooled()) {
    s->pooled_ = s->edge_->Tensor(g->FindOutput("edge.pooled")->tensor);
  }
  for (const std::string& name : s->cloud_inputs_) {
    HYBRID_ASSIGN_OR_RETURN(TensorView v, s->edge_->Tensor(name));
    s->sent_.push_back(v);
    s->gathered_.emplace_back(static_cast<size_t>(v.size()));
  }
  s->cloud_out_.resize(static_cast<size_t>(options.batch) * s->classes_);
  if (transport) {
    s->transport_ = std::move(transport);
  } else if (!s->cloud_inputs_.empty()) {
    HYBRID_ASSIGN_OR_RETURN(s->transport_, MakeInProcessTransport(g, options.cloud_backend,
                                                                  options.batch, options.threads));
  }
  return s;
}

std::span<const float> LogitsRow(const TensorView& logits, const TensorView& probs, int classes,
                                 int i, std::vector<float>* scratch) {
  if (logits.data != nullptr) {
    return {logits.data + static_cast<int64_t>(i) * classes, static_cast<size_t>(classes)};
  }
  for (int j = 0; j < classes; ++j) {
    (*scratch)[j] = std::log(probs.data[static_cast<int64_t>(i) * classes + j]);
  }
  return *scratch;
}

float HybridSession::Score(int i) {
  const std::span<const float> probs(probs_.data + static_cast<int64_t>(i) * classes_,
                                     static_cast<size_t>(classes_));
  switch (score_kind_) {
    case router::ScoreKind::kMaxProb:
      return router::MaxProbScore(LogitsRow(logits_, probs_, classes_, i, &scratch_));
    case router::ScoreKind::kEntropy:
      return router::EntropyScore(LogitsRow(logits_, probs_, classes_, i, &scratch_));
    case router::ScoreKind::kMargin:
      return router::MarginScore(LogitsRow(logits_, probs_, classes_, i, &scratch_));
    case router::ScoreKind::kLearned: {
      std::span<const float> pooled;
      if (pooled_.data != nullptr) {
        const int64_t per = pooled_.size() / options_.batch;
        pooled = std::span<const float>(pooled_.data + i * per, static_cast<size_t>(per));
      }
      return learned_->Score(probs, pooled);
    }
  }
  return 0.f;
}

Result<std::vector<Answer>> HybridSession::Classify(std::span<const uint8_t> pixels, int count) {
  const int64_t per_image = image_.size() / options_.batch;
  if (count < 0 || static_cast<int64_t>(pixels.size()) != per_image * count) {
    return Error("Classify: {} pixels for {} images of {} pixels each", pixels.size(), count,
                 per_image);
  }
  const graph::Graph& g = *graph_;
  const int channels = static_cast<int>(image_.shape.back());
  std::vector<Answer> answers(static_cast<size_t>(count));
  const router::Policy policy{options_.threshold, options_.abstain};
  for (int first = 0; first < count; first += options_.batch) {
    const auto t0 = Clock::now();
    const int n = std::min(options_.batch, count - first);
    // As data::NormalizeImage computes it: (pixel / 255 - mean[c]) / std[c].
    const uint8_t* px = pixels.data() + first * per_image;
    for (int64_t j = 0; j < n * per_image; ++j) {
      const size_t c = static_cast<size_t>(j % channels);
      const float m = g.input_mean.empty() ? 0.f : g.input_mean[g.input_mean.size() == 1 ? 0 : c];
      const float sd = g.input_std.empty() ? 1.f : g.input_std[g.input_std.size() == 1 ? 0 : c];
      image_.data[j] = (static_cast<float>(px[j]) / 255.f - m) / sd;
    }
    std::fill(image_.data + n * per_image, image_.data + image_.size(), 0.f);
    HYBRID_RETURN_IF_ERROR(edge_->Run());
    std::vector<int> sent;
    for (int i = 0; i < n; ++i) {
      Answer& a = answers[first + i];
      a.score = Score(i);
      a.where = policy.Decide(a.score);
      if (a.where == router::Decision::kEdge) {
        const float* row = probs_.data + static_cast<int64_t>(i) * classes_;
        a.label = static_cast<int>(std::max_element(row, row + classes_) - row);
        a.confidence = row[a.label];
      } else if (a.where == router::Decision::kCloud) {
        sent.push_back(i);
      }
    }
    const auto t1 = Clock::now();
    double cloud_ms = 0;
    if (!sent.empty()) {
      if (!transport_) return Error("the model has no cloud partition to send inputs to");
      CloudRequest request;
      request.count = static_cast<int>(sent.size());
      for (size_t k = 0; k < sent_.size(); ++k) {
        const int64_t per = sent_[k].size() / options_.batch;
        for (size_t j = 0; j < sent.size(); ++j) {
          std::memcpy(gathered_[k].data() + j * per, sent_[k].data + sent[j] * per,
                      sizeof(float) * per);
        }
        request.inputs.emplace_back(gathered_[k].data(), static_cast<size_t>(per * sent.size()));
      }
      const auto c0 = Clock::now();
      CloudReply reply;
      HYBRID_RETURN_IF_ERROR(transport_->Infer(request, cloud_out_, &reply));
      cloud_ms = Ms(c0, Clock::now());
      ++stats_.requests;
      stats_.samples_sent += static_cast<int64_t>(sent.size());
      stats_.attempts += reply.attempts;
      stats_.bytes_sent += reply.bytes_sent;
      stats_.bytes_received += reply.bytes_received;
      stats_.call_ms += reply.call_ms;
      stats_.server_ms += reply.server_ms;
      if (!reply.answered) {
        ++stats_.unanswered_requests;
        stats_.degraded += static_cast<int64_t>(sent.size());
      }
      for (size_t j = 0; j < sent.size(); ++j) {
        Answer& a = answers[first + sent[j]];
        // Without the cloud's answer, the edge's own stands, flagged.
        const float* row = reply.answered ? cloud_out_.data() + j * classes_
                                          : probs_.data + static_cast<int64_t>(sent[j]) * classes_;
        a.label = static_cast<int>(std::max_element(row, row + classes_) - row);
        a.confidence = row[a.label];
        if (!reply.answered) {
          a.where = router::Decision::kEdge;
          a.degraded = true;
        }
      }
    }
    const double total = Ms(t0, Clock::now());
    for (int i = 0; i < n; ++i) {
      Answer& a = answers[first + i];
      a.edge_ms = Ms(t0, t1);
      a.cloud_ms = cloud_ms;
      a.total_ms = total;
    }
  }
  return answers;
}

}  // namespace hybrid::engine
