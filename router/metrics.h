// The figures of a split-execution operating point, from per-sample outcomes and the model's
// static costs: coverage, hybrid and oracle accuracy, MACs by precision, modeled edge energy and
// bytes sent per input.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "graph/partition.h"
#include "router/energy.h"

namespace hybrid::router {

// What is known of each sample: the router's score, and whether the edge's and the cloud's
// answers are right.
struct Outcomes {
  std::vector<float> score;
  std::vector<uint8_t> edge_right, cloud_right;
  size_t size() const { return score.size(); }
};

// The model's costs per input: the edge partition runs on every input, the cloud partition on the
// inputs sent, each of which sends `bytes_per_sent` bytes.
struct Costs {
  graph::PartitionCost edge, cloud;
  double bytes_per_sent = 0;
};

struct OperatingPoint {
  float threshold = 0;
  double coverage = 0;  // share answered at the edge
  double accuracy = 0;  // share answered right, at the edge or in the cloud
  std::array<double, graph::kNumPrecisions> macs{};  // per input, by precision
  double compute_uj = 0;                             // edge compute energy per input
  std::vector<double> radio_uj;                      // per radio of the table, per input
  double bytes_sent = 0;                             // per input
};

// The operating point of `threshold` (scores at or below it stay at the edge) on `o`.
OperatingPoint Evaluate(const Outcomes& o, float threshold, const Costs& costs,
                        const EnergyTable& table);

// The best hybrid accuracy any router reaches at `coverage` (rounded up to whole samples): keep
// at the edge first the samples only the edge answers right, then those both answer alike, last
// those only the cloud answers right.
double OracleAccuracy(std::span<const uint8_t> edge_right, std::span<const uint8_t> cloud_right,
                      double coverage);

// Share of ones.
double Mean(std::span<const uint8_t> v);

}  // namespace hybrid::router
