#include "router/metrics.h"

#include <algorithm>
#include <cmath>

namespace hybrid::router {

double Mean(std::span<const uint8_t> v) {
  if (v.empty()) return 0;
  int64_t n = 0;
  for (uint8_t x : v) n += x != 0;
  return static_cast<double>(n) / static_cast<double>(v.size());
}

OperatingPoint Evaluate(const Outcomes& o, float threshold, const Costs& costs,
                        const EnergyTable& table) {
  OperatingPoint p;
  p.threshold = threshold;
  const size_t n = o.size();
  int64_t kept = 0, right = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool edge = o.score[i] <= threshold;
    kept += edge;
    right += edge ? o.edge_right[i] != 0 : o.cloud_right[i] != 0;
  }
  p.coverage = n == 0 ? 0 : static_cast<double>(kept) / static_cast<double>(n);
  p.accuracy = n == 0 ? 0 : static_cast<double>(right) / static_cast<double>(n);
  const double sent = 1 - p.coverage;
  for (int k = 0; k < graph::kNumPrecisions; ++k) {
    p.macs[k] =
        static_cast<double>(costs.edge.macs[k]) + sent * static_cast<double>(costs.cloud.macs[k]);
  }
  p.compute_uj = ComputeEnergyUj(costs.edge, table);
  p.bytes_sent = sent * costs.bytes_per_sent;
  for (const EnergyTable::Radio& r : table.radios) {
    p.radio_uj.push_back(sent * RadioEnergyUj(r, costs.bytes_per_sent));
  }
  return p;
}

double OracleAccuracy(std::span<const uint8_t> edge_right, std::span<const uint8_t> cloud_right,
                      double coverage) {
  const size_t n = edge_right.size();
  if (n == 0) return 0;
  // Gains of keeping a sample at the edge rather than sending it: +1, 0 or -1.
  std::vector<int> gain(n);
  int64_t cloud = 0;
  for (size_t i = 0; i < n; ++i) {
    gain[i] = (edge_right[i] != 0) - (cloud_right[i] != 0);
    cloud += cloud_right[i] != 0;
  }
  std::sort(gain.begin(), gain.end(), std::greater<int>());
  const size_t k = std::min(n, static_cast<size_t>(std::ceil(coverage * n - 1e-9)));
  int64_t right = cloud;
  for (size_t i = 0; i < k; ++i) right += gain[i];
  return static_cast<double>(right) / static_cast<double>(n);
}

}  // namespace hybrid::router
