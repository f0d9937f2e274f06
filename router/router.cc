#include "router/router.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace hybrid::router {

Result<ScoreKind> ParseScoreKind(std::string_view name) {
  if (name == "maxprob") return ScoreKind::kMaxProb;
  if (name == "entropy") return ScoreKind::kEntropy;
  if (name == "margin") return ScoreKind::kMargin;
  if (name == "learned") return ScoreKind::kLearned;
  return Error("unknown router '{}' (expected learned, entropy, maxprob, margin or oracle)", name);
}

std::string_view ToString(ScoreKind k) {
  switch (k) {
    case ScoreKind::kMaxProb:
      return "maxprob";
    case ScoreKind::kEntropy:
      return "entropy";
    case ScoreKind::kMargin:
      return "margin";
    case ScoreKind::kLearned:
      return "learned";
  }
  return "?";
}

std::string_view ToString(Decision d) {
  switch (d) {
    case Decision::kEdge:
      return "edge";
    case Decision::kCloud:
      return "cloud";
    case Decision::kAbstain:
      return "abstain";
  }
  return "?";
}

namespace {

// exp(z_j - z_max) for each logit, their sum, and the index of the largest.
struct Exps {
  std::vector<double> e;
  double sum = 0;
  size_t top = 0;
};
Exps Exponentials(std::span<const float> logits) {
  Exps x;
  for (size_t j = 1; j < logits.size(); ++j) {
    if (logits[j] > logits[x.top]) x.top = j;
  }
  x.e.resize(logits.size());
  for (size_t j = 0; j < logits.size(); ++j) {
    x.e[j] = std::exp(static_cast<double>(logits[j]) - logits[x.top]);
    x.sum += x.e[j];
  }
  return x;
}

float Log(double v) { return static_cast<float>(std::log(v)); }

}  // namespace

float MaxProbScore(std::span<const float> logits) {
  const Exps x = Exponentials(logits);
  // 1 - max p = (sum of the others) / sum, without the cancellation of 1 - p.
  return Log((x.sum - x.e[x.top]) / x.sum);
}

float EntropyScore(std::span<const float> logits) {
  const Exps x = Exponentials(logits);
  const double log_sum = std::log(x.sum);
  double h = 0;
  for (size_t j = 0; j < logits.size(); ++j) {
    if (x.e[j] > 0) h -= x.e[j] / x.sum * (std::log(x.e[j]) - log_sum);
  }
  return Log(h);
}

float MarginScore(std::span<const float> logits) {
  const Exps x = Exponentials(logits);
  double second = 0;
  for (size_t j = 0; j < logits.size(); ++j) {
    if (j != x.top) second = std::max(second, x.e[j]);
  }
  // 1 - (p1 - p2) = (sum of the others + p2's share) / sum.
  return Log((x.sum - x.e[x.top] + second) / x.sum);
}

float ProbabilityEntropy(std::span<const float> probs) {
  float h = 0.f;
  for (float p : probs) {
    if (p > 0.f) h -= p * std::log(p);
  }
  return h;
}

std::vector<float> RouterFeatures(std::span<const float> probs, std::span<const float> pooled) {
  std::vector<float> sorted(probs.begin(), probs.end());
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  const size_t k = std::min<size_t>(10, sorted.size());
  std::vector<float> f;
  f.reserve(1 + k * (k - 1) / 2 + pooled.size());
  f.push_back(ProbabilityEntropy(probs));
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = i + 1; j < k; ++j) f.push_back(sorted[i] - sorted[j]);
  }
  f.insert(f.end(), pooled.begin(), pooled.end());
  return f;
}

Result<LearnedRouter> LearnedRouter::FromGraph(const graph::Graph& g) {
  const graph::NamedOutput* out = nullptr;
  for (const graph::NamedOutput& o : g.outputs) {
    if (o.kind == graph::OutputKind::kRouter) out = &o;
  }
  if (out == nullptr) return Error("the model has no learned router (no output of kind router)");
  const graph::TensorId in = g.FindTensor("router.features");
  if (in < 0) return Error("the model's router reads no 'router.features' input");
  // Walk forward from the input through the single chain of dense and relu nodes.
  LearnedRouter r;
  r.features_ = static_cast<int>(g.tensors[in].shape.back());
  graph::TensorId cur = in;
  while (cur != out->tensor) {
    int next = -1;
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      if (!g.nodes[n].inputs.empty() && g.nodes[n].inputs[0] == cur) next = static_cast<int>(n);
    }
    if (next < 0) return Error("the router's output is not reached from 'router.features'");
    const graph::Node& node = g.nodes[next];
    if (node.op == graph::OpType::kDense) {
      const auto& q = std::get<graph::DenseAttrs>(node.attrs).quant;
      if (!q.IsFloat()) return Error("router node '{}': only f32 dense layers", node.name);
      const graph::Shape& w = g.tensors[node.inputs[1]].shape;
      Layer l;
      l.out = static_cast<int>(w[0]);
      l.in = static_cast<int>(w[1]);
      l.w = g.ConstantData<float>(node.inputs[1]);
      l.b = node.inputs.size() > 2 ? g.ConstantData<float>(node.inputs[2]) : nullptr;
      const int expected = r.layers_.empty() ? r.features_ : r.layers_.back().out;
      if (l.in != expected)
        return Error("router node '{}': reads {} values, not {}", node.name, l.in, expected);
      r.layers_.push_back(l);
    } else if (node.op == graph::OpType::kRelu && !r.layers_.empty()) {
      r.layers_.back().relu = true;
    } else {
      return Error("router node '{}' ({}): only dense and relu nodes are supported", node.name,
                   graph::ToString(node.op));
    }
    cur = node.outputs[0];
  }
  if (r.layers_.empty() || r.layers_.back().out != 1) {
    return Error("the router must end in a dense layer with one output");
  }
  r.pooled_ = g.metadata.count("router.features") != 0 &&
              g.metadata.at("router.features").find("pooled") != std::string::npos;
  return r;
}

float LearnedRouter::Score(std::span<const float> features) const {
  std::vector<float> x(features.begin(), features.end()), y;
  for (const Layer& l : layers_) {
    y.assign(l.out, 0.f);
    for (int o = 0; o < l.out; ++o) {
      // As the ref backend's dense layer: the bias, then each product in turn.
      float acc = l.b != nullptr ? l.b[o] : 0.f;
      for (int i = 0; i < l.in; ++i) acc += x[i] * l.w[static_cast<int64_t>(o) * l.in + i];
      y[o] = l.relu && acc < 0.f ? 0.f : acc;
    }
    x.swap(y);
  }
  return x[0];
}

float LearnedRouter::Score(std::span<const float> probs, std::span<const float> pooled) const {
  return Score(RouterFeatures(probs, pooled_ ? pooled : std::span<const float>()));
}

double Coverage(std::span<const float> scores, float threshold) {
  if (scores.empty()) return 0;
  const auto kept =
      std::count_if(scores.begin(), scores.end(), [&](float s) { return s <= threshold; });
  return static_cast<double>(kept) / static_cast<double>(scores.size());
}

float ThresholdForCoverage(std::span<const float> scores, double coverage) {
  // The ends hold for any input, not only for the held-out scores: a score outside their range
  // would otherwise cross a threshold set at their extreme. Finite, so that JSON can carry them.
  if (coverage >= 1.0) return std::numeric_limits<float>::max();
  if (coverage <= 0.0) return std::numeric_limits<float>::lowest();
  std::vector<float> sorted(scores.begin(), scores.end());
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const size_t k = static_cast<size_t>(std::ceil(coverage * static_cast<double>(n) - 1e-9));
  if (n == 0 || k == 0) {
    return n == 0 ? 0.f : std::nextafter(sorted[0], -std::numeric_limits<float>::infinity());
  }
  return sorted[std::min(k, n) - 1];
}

Result<float> ThresholdForBudget(std::span<const float> scores, const Budget& budget,
                                 const std::function<double(float)>& value) {
  std::vector<float> candidates(scores.begin(), scores.end());
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  if (!candidates.empty()) {
    candidates.insert(candidates.begin(),
                      std::nextafter(candidates[0], -std::numeric_limits<float>::infinity()));
  }
  // Thresholds in increasing order keep more inputs at the edge.
  if (budget.kind == Budget::Kind::kMinAccuracy) {
    for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
      if (value(*it) >= budget.value) return *it;
    }
    return Error("no coverage reaches an accuracy of {}", budget.value);
  }
  for (float t : candidates) {
    if (value(t) <= budget.value) return t;
  }
  return Error("no coverage stays within a {} of {}",
               budget.kind == Budget::Kind::kMaxEnergy ? "energy" : "latency", budget.value);
}

}  // namespace hybrid::router
