// Counters, gauges and histograms with labels, rendered in the Prometheus text exposition format
// (version 0.0.4) for the server's /metrics endpoint.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace hybrid::net {

// Label pairs, e.g. {{"model", "fmnist_b_binary"}, {"code", "UNAVAILABLE"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  // Declares a family before use; its series appear once first touched.
  void DeclareCounter(const std::string& name, const std::string& help);
  void DeclareGauge(const std::string& name, const std::string& help);
  void DeclareHistogram(const std::string& name, const std::string& help,
                        std::vector<double> bounds);

  // Adds to a counter, sets a gauge, records a histogram observation. Expects the family
  // declared with that type.
  void Add(const std::string& name, const Labels& labels, double value = 1);
  void Set(const std::string& name, const Labels& labels, double value);
  void Observe(const std::string& name, const Labels& labels, double value);

  // The current value of a counter or gauge series (0 if never touched); for tests and logs.
  double Value(const std::string& name, const Labels& labels) const;

  // Every family in the text exposition format.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0;               // counter, gauge
    std::vector<uint64_t> buckets;  // histogram: counts per upper bound (not cumulative)
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<double> bounds;
    std::map<std::string, Series> series;  // by rendered label set
  };
  Series& Get(const std::string& name, const Labels& labels, Type type);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

// Renders labels as {a="x",b="y"} with Prometheus escaping; empty for no labels.
std::string RenderLabels(const Labels& labels);

}  // namespace hybrid::net
