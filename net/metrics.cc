#include "net/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace hybrid::net {
namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

// Adds one more label to a rendered label set.
std::string WithLabel(const std::string& rendered, const std::string& name,
                      const std::string& value) {
  const std::string pair = fmt::format("{}=\"{}\"", name, value);
  if (rendered.empty()) return "{" + pair + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + pair + "}";
}

}  // namespace

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", i ? "," : "", labels[i].first, Escape(labels[i].second));
  }
  return out + "}";
}

void Metrics::DeclareCounter(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mutex_);
  families_[name] = Family{Type::kCounter, help, {}, {}};
}

void Metrics::DeclareGauge(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mutex_);
  families_[name] = Family{Type::kGauge, help, {}, {}};
}

void Metrics::DeclareHistogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  std::lock_guard<std::mutex> lock(mutex_);
  families_[name] = Family{Type::kHistogram, help, std::move(bounds), {}};
}

Metrics::Series& Metrics::Get(const std::string& name, const Labels& labels, Type type) {
  auto it = families_.find(name);
  // A metric used without its declaration is a bug in the server, not a request's fault.
  if (it == families_.end() || it->second.type != type) {
    throw std::logic_error("metric '" + name + "' is not declared with this type");
  }
  Series& s = it->second.series[RenderLabels(labels)];
  if (type == Type::kHistogram && s.buckets.empty()) s.buckets.resize(it->second.bounds.size());
  return s;
}

void Metrics::Add(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  Get(name, labels, Type::kCounter).value += value;
}

void Metrics::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  Get(name, labels, Type::kGauge).value = value;
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  Series& s = Get(name, labels, Type::kHistogram);
  const std::vector<double>& bounds = families_[name].bounds;
  const auto at = std::lower_bound(bounds.begin(), bounds.end(), value);
  if (at != bounds.end()) ++s.buckets[at - bounds.begin()];
  ++s.count;
  s.sum += value;
}

double Metrics::Value(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto s = it->second.series.find(RenderLabels(labels));
  return s == it->second.series.end() ? 0 : s->second.value;
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        out += fmt::format("{}{} {}\n", name, labels, Number(s.value));
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.bounds.size(); ++i) {
        cumulative += s.buckets[i];
        out += fmt::format("{}_bucket{} {}\n", name, WithLabel(labels, "le", Number(f.bounds[i])),
                           cumulative);
      }
      out += fmt::format("{}_bucket{} {}\n", name, WithLabel(labels, "le", "+Inf"), s.count);
      out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, labels, Number(s.sum), name, labels,
                         s.count);
    }
  }
  return out;
}

}  // namespace hybrid::net
