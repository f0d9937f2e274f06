// The modeled energy of split execution: per-operation energies and a radio power model read from
// a JSON table the user can replace (models/energy-45nm.json is the default, compiled in; every
// value there cites its source).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "base/status.h"
#include "graph/partition.h"

namespace hybrid::router {

struct EnergyTable {
  // pJ per multiply-accumulate, by graph::Precision.
  std::array<double, graph::kNumPrecisions> mac_pj{};
  double weight_read_pj_per_byte = 0;
  // Huang et al.'s model: P = alpha_up * throughput_up + beta while sending.
  struct Radio {
    std::string name;
    double alpha_up_mw_per_mbps = 0, beta_mw = 0, uplink_mbps = 1;
  };
  std::vector<Radio> radios;
};

// Parses a table; `where` names it in errors. Every field the default table has is required.
Result<EnergyTable> ParseEnergyTable(const std::string& json, const std::string& where);
Result<EnergyTable> LoadEnergyTable(const std::string& path);
// The default table's text (models/energy-45nm.json).
const std::string& DefaultEnergyTableText();

// µJ to run `cost` once: its MACs at each precision and one read of its weight bytes.
double ComputeEnergyUj(const graph::PartitionCost& cost, const EnergyTable& table);
// µJ to run `cost` once with every MAC in f32 and every weight 4 bytes: full precision.
double Fp32EnergyUj(const graph::PartitionCost& cost, const EnergyTable& table);
// µJ the radio spends sending `bytes` (time at the uplink throughput, times the power while
// sending; the tail energy after the transfer is left out).
double RadioEnergyUj(const EnergyTable::Radio& radio, double bytes);

}  // namespace hybrid::router
