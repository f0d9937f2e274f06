// Routing: per input, a score of how much the cloud is needed (higher: send), from an exit's class
// probabilities (max-softmax, entropy, margin) or from the learned router a shape-B model file
// carries; thresholds calibrated on held-out data; the policy that turns a score into edge, cloud
// or abstain.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "graph/ir.h"

namespace hybrid::router {

enum class ScoreKind { kMaxProb, kEntropy, kMargin, kLearned };

// "maxprob", "entropy", "margin" or "learned".
Result<ScoreKind> ParseScoreKind(std::string_view name);
std::string_view ToString(ScoreKind k);

// Scores from one row of an exit's logits (its softmax's input); higher means less confident at
// the edge. Computed in double from the logits and given as logarithms, monotone in the usual
// scores, so that inputs whose probabilities round to 1 in float still rank apart:
// log(1 - max p); log of the entropy -sum p log p; log(1 - (p(1) - p(2))) of the two largest.
float MaxProbScore(std::span<const float> logits);
float EntropyScore(std::span<const float> logits);
float MarginScore(std::span<const float> logits);

// The entropy -sum p log p (0 log 0 = 0) of probabilities, in float as the trainer computes the
// learned router's first feature.
float ProbabilityEntropy(std::span<const float> probs);

// The learned router's input for one sample, exactly as the trainer builds it (docs/train.md):
// the entropy, then p(i) - p(j) for i < j over the top min(10, classes) probabilities in
// decreasing order, then `pooled` (empty when the router takes none).
std::vector<float> RouterFeatures(std::span<const float> probs, std::span<const float> pooled);

// The learned router of a model file: the MLP (dense and relu nodes) from the graph input
// `router.features` to the named output of kind router, run in plain C++.
class LearnedRouter {
 public:
  // Finds the router in `graph`; an error if the model has none or it is not a dense/relu chain.
  static Result<LearnedRouter> FromGraph(const graph::Graph& graph);
  int features() const { return features_; }
  // Whether the router reads the edge's pooled features (named output `edge.pooled`).
  bool pooled() const { return pooled_; }
  // The router's logit for one sample's features (higher: send to the cloud).
  float Score(std::span<const float> features) const;
  // Score from the edge's probabilities and pooled features.
  float Score(std::span<const float> probs, std::span<const float> pooled) const;

 private:
  struct Layer {
    int in = 0, out = 0;
    const float* w = nullptr;  // [out][in]
    const float* b = nullptr;  // [out] or null
    bool relu = false;         // after this layer
  };
  std::vector<Layer> layers_;
  int features_ = 0;
  bool pooled_ = false;
};

enum class Decision { kEdge, kCloud, kAbstain };
std::string_view ToString(Decision d);

// Scores at or below the threshold stay at the edge; the others go to the cloud, or with
// `abstain` (an edge-only deployment) get no answer.
struct Policy {
  float threshold = 0.f;
  bool abstain = false;
  Decision Decide(float score) const {
    if (score <= threshold) return Decision::kEdge;
    return abstain ? Decision::kAbstain : Decision::kCloud;
  }
};

// The threshold whose coverage (the share of `scores` at or below it) is the smallest at or
// above `coverage`; coverage 0 sends every input, coverage 1 keeps every input (the lowest and
// the largest float, whatever the scores). Expects 0 <= coverage <= 1 and scores without NaN.
float ThresholdForCoverage(std::span<const float> scores, double coverage);

// Share of `scores` at or below `threshold`.
double Coverage(std::span<const float> scores, float threshold);

// The largest coverage whose value(coverage) stays within `budget` (for a budget of energy or
// latency that grows as fewer inputs stay at the edge, the smallest coverage within it), searched
// over the coverages the scores can produce: returns the threshold, or an error if none meets it.
// `value(threshold)` evaluates the quantity on held-out data at a threshold.
struct Budget {
  enum class Kind { kMinAccuracy, kMaxEnergy, kMaxLatency } kind;
  double value;
};
Result<float> ThresholdForBudget(std::span<const float> scores, const Budget& budget,
                                 const std::function<double(float threshold)>& value);

}  // namespace hybrid::router
