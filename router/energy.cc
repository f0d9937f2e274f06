#include "router/energy.h"

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "router/energy_default.h"

namespace hybrid::router {
namespace {

using Json = nlohmann::ordered_json;

Result<double> Number(const Json& j, const std::string& key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Error("{}: missing '{}'", where, key);
  const Json& v = it->is_object() && it->contains("value") ? (*it)["value"] : *it;
  if (!v.is_number()) return Error("{}.{}: expected a number", where, key);
  const double d = v.get<double>();
  if (!(d >= 0)) return Error("{}.{}: {} is negative", where, key, d);
  return d;
}

}  // namespace

Result<EnergyTable> ParseEnergyTable(const std::string& text, const std::string& where) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return Error("{}: not valid JSON: {}", where, e.what());
  }
  if (!j.is_object() || !j.contains("mac_pj") || !j["mac_pj"].is_object()) {
    return Error("{}: expected an object with 'mac_pj'", where);
  }
  EnergyTable t;
  const char* names[graph::kNumPrecisions] = {"f32", "int8", "int4", "int2", "binary"};
  for (int p = 0; p < graph::kNumPrecisions; ++p) {
    HYBRID_ASSIGN_OR_RETURN(t.mac_pj[p], Number(j["mac_pj"], names[p], where + ".mac_pj"));
  }
  HYBRID_ASSIGN_OR_RETURN(t.weight_read_pj_per_byte, Number(j, "weight_read_pj_per_byte", where));
  if (!j.contains("radio") || !j["radio"].is_object()) {
    return Error("{}: expected an object 'radio'", where);
  }
  for (const auto& [name, r] : j["radio"].items()) {
    const std::string rw = where + ".radio." + name;
    EnergyTable::Radio radio;
    radio.name = name;
    HYBRID_ASSIGN_OR_RETURN(radio.alpha_up_mw_per_mbps, Number(r, "alpha_up_mw_per_mbps", rw));
    HYBRID_ASSIGN_OR_RETURN(radio.beta_mw, Number(r, "beta_mw", rw));
    HYBRID_ASSIGN_OR_RETURN(radio.uplink_mbps, Number(r, "uplink_mbps", rw));
    if (!(radio.uplink_mbps > 0)) return Error("{}.uplink_mbps: must be positive", rw);
    t.radios.push_back(radio);
  }
  return t;
}

Result<EnergyTable> LoadEnergyTable(const std::string& path) {
  HYBRID_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, "energy table"));
  return ParseEnergyTable(text, path);
}

const std::string& DefaultEnergyTableText() {
  static const std::string text = kDefaultEnergyTable;
  return text;
}

double ComputeEnergyUj(const graph::PartitionCost& cost, const EnergyTable& t) {
  double pj = static_cast<double>(cost.param_bytes) * t.weight_read_pj_per_byte;
  for (int p = 0; p < graph::kNumPrecisions; ++p) {
    pj += static_cast<double>(cost.macs[p]) * t.mac_pj[p];
  }
  return pj * 1e-6;
}

double Fp32EnergyUj(const graph::PartitionCost& cost, const EnergyTable& t) {
  const double pj = static_cast<double>(cost.total_macs()) * t.mac_pj[0] +
                    static_cast<double>(cost.params) * 4 * t.weight_read_pj_per_byte;
  return pj * 1e-6;
}

double RadioEnergyUj(const EnergyTable::Radio& r, double bytes) {
  const double seconds = bytes * 8 / (r.uplink_mbps * 1e6);
  const double mw = r.alpha_up_mw_per_mbps * r.uplink_mbps + r.beta_mw;
  return mw * seconds * 1e3;  // mW * s = mJ
}

}  // namespace hybrid::router
