#include "train/recipe.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace hybrid::train {
namespace {

using Json = nlohmann::json;

// Reads the fields of one JSON object, each at most once, and then refuses the keys it did not
// read: a misspelt field is an error rather than a silent default.
class Fields {
 public:
  Fields(const Json& j, std::string path) : j_(j), path_(std::move(path)) {}

  Status Object() const {
    if (!j_.is_object()) return Error("{}: expected an object", path_);
    return Status::Ok();
  }

  template <typename T>
  Status Get(const char* key, T* out, bool required = false) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) return Error("{}: missing field '{}'", path_, key);
      return Status::Ok();
    }
    try {
      *out = it->template get<T>();
    } catch (const Json::exception&) {
      return Error("{}.{}: expected {}, got {}", path_, key, TypeName<T>(), it->dump());
    }
    return Status::Ok();
  }

  const Json* Child(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  Status NoOthers() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (seen_.count(it.key()) == 0) return Error("{}: unknown field '{}'", path_, it.key());
    }
    return Status::Ok();
  }

  const std::string& path() const { return path_; }

 private:
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_integral_v<T>) return "an integer";
    if constexpr (std::is_floating_point_v<T>) return "a number";
    return "a list";
  }
  const Json& j_;
  std::string path_;
  std::set<std::string> seen_;
};

Result<graph::Precision> ParsePrecision(const std::string& s, const std::string& where) {
  if (s == "f32") return graph::Precision::kF32;
  if (s == "binary") return graph::Precision::kBinary;
  if (s == "int8") return graph::Precision::kInt8;
  if (s == "int4") return graph::Precision::kInt4;
  if (s == "int2") return graph::Precision::kInt2;
  return Error("{}: unknown precision '{}' (expected f32, binary, int8, int4 or int2)", where, s);
}

Status ParseHead(const Json& j, const std::string& path, HeadSpec* head) {
  Fields f(j, path);
  HYBRID_RETURN_IF_ERROR(f.Object());
  HYBRID_RETURN_IF_ERROR(f.Get("kind", &head->kind));
  HYBRID_RETURN_IF_ERROR(f.Get("pool", &head->pool));
  if (head->kind != "gap" && head->kind != "pool") {
    return Error("{}.kind: unknown head '{}' (expected gap or pool)", path, head->kind);
  }
  if (head->pool < 1 || head->pool > 64)
    return Error("{}.pool: {} is not in 1..64", path, head->pool);
  return f.NoOthers();
}

Status ParseNet(const Json& j, const std::string& path, NetSpec* net) {
  Fields f(j, path);
  HYBRID_RETURN_IF_ERROR(f.Object());
  HYBRID_RETURN_IF_ERROR(f.Get("stem_channels", &net->stem_channels));
  if (net->stem_channels < 1 || net->stem_channels > 1024) {
    return Error("{}.stem_channels: {} is not in 1..1024", path, net->stem_channels);
  }
  const Json* stages = f.Child("stages");
  if (stages == nullptr || !stages->is_array() || stages->empty()) {
    return Error("{}.stages: expected a non-empty list of stages", path);
  }
  for (size_t i = 0; i < stages->size(); ++i) {
    const std::string sp = fmt::format("{}.stages[{}]", path, i);
    Fields s((*stages)[i], sp);
    HYBRID_RETURN_IF_ERROR(s.Object());
    StageSpec st;
    std::string precision = "f32";
    HYBRID_RETURN_IF_ERROR(s.Get("channels", &st.channels, true));
    HYBRID_RETURN_IF_ERROR(s.Get("blocks", &st.blocks));
    HYBRID_RETURN_IF_ERROR(s.Get("stride", &st.stride));
    HYBRID_RETURN_IF_ERROR(s.Get("precision", &precision));
    HYBRID_RETURN_IF_ERROR(s.NoOthers());
    HYBRID_ASSIGN_OR_RETURN(st.precision, ParsePrecision(precision, sp + ".precision"));
    if (st.channels < 1 || st.channels > 1024) {
      return Error("{}.channels: {} is not in 1..1024", sp, st.channels);
    }
    if (st.blocks < 1 || st.blocks > 16)
      return Error("{}.blocks: {} is not in 1..16", sp, st.blocks);
    if (st.stride != 1 && st.stride != 2)
      return Error("{}.stride: {} is not 1 or 2", sp, st.stride);
    net->stages.push_back(st);
  }
  if (const Json* head = f.Child("head")) {
    HYBRID_RETURN_IF_ERROR(ParseHead(*head, path + ".head", &net->head));
  }
  return f.NoOthers();
}

}  // namespace

const std::vector<std::string>& RouterLabels() {
  static const std::vector<std::string> labels = {"proxy", "gain", "soft-proxy", "soft-gain"};
  return labels;
}

bool IsRouterLabel(const std::string& label) {
  const auto& l = RouterLabels();
  return std::find(l.begin(), l.end(), label) != l.end();
}

Result<Recipe> ParseRecipe(const std::string& text, const std::string& where) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return Error("{}: not valid JSON: {}", where, e.what());
  }
  Recipe r;
  r.text = text;
  Fields f(j, where);
  HYBRID_RETURN_IF_ERROR(f.Object());
  // A misspelt field first: it would otherwise surface as a missing one.
  static const std::set<std::string> kCommon = {
      "name",     "shape",        "dataset",   "data_dir", "seed",     "validation",
      "epochs",   "batch",        "optimizer", "lr",       "momentum", "weight_decay",
      "schedule", "crop_padding", "flip",      "mean",     "std"};
  static const std::set<std::string> kShapeA = {"net", "split_after", "split", "exits"};
  static const std::set<std::string> kShapeB = {"edge", "cloud", "router"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (kCommon.count(it.key()) + kShapeA.count(it.key()) + kShapeB.count(it.key()) == 0) {
      return Error("{}: unknown field '{}'", where, it.key());
    }
  }
  std::string shape;
  HYBRID_RETURN_IF_ERROR(f.Get("name", &r.name, true));
  HYBRID_RETURN_IF_ERROR(f.Get("shape", &shape, true));
  HYBRID_RETURN_IF_ERROR(f.Get("dataset", &r.dataset));
  HYBRID_RETURN_IF_ERROR(f.Get("data_dir", &r.data_dir));
  HYBRID_RETURN_IF_ERROR(f.Get("seed", &r.seed));
  HYBRID_RETURN_IF_ERROR(f.Get("validation", &r.validation));
  HYBRID_RETURN_IF_ERROR(f.Get("epochs", &r.epochs));
  HYBRID_RETURN_IF_ERROR(f.Get("batch", &r.batch));
  HYBRID_RETURN_IF_ERROR(f.Get("optimizer", &r.optimizer));
  HYBRID_RETURN_IF_ERROR(f.Get("lr", &r.lr));
  HYBRID_RETURN_IF_ERROR(f.Get("momentum", &r.momentum));
  HYBRID_RETURN_IF_ERROR(f.Get("weight_decay", &r.weight_decay));
  HYBRID_RETURN_IF_ERROR(f.Get("schedule", &r.schedule));
  HYBRID_RETURN_IF_ERROR(f.Get("crop_padding", &r.crop_padding));
  HYBRID_RETURN_IF_ERROR(f.Get("flip", &r.flip));
  HYBRID_RETURN_IF_ERROR(f.Get("mean", &r.mean));
  HYBRID_RETURN_IF_ERROR(f.Get("std", &r.std));
  if (r.name.empty()) return Error("{}.name: empty", where);
  if (shape == "A") {
    r.shape = ModelShape::kConditional;
  } else if (shape == "B") {
    r.shape = ModelShape::kSelective;
  } else {
    return Error(
        "{}.shape: unknown shape '{}' (expected A: conditionally deep, B: selective "
        "query)",
        where, shape);
  }
  if (r.epochs < 0 || r.epochs > 1000)
    return Error("{}.epochs: {} is not in 0..1000", where, r.epochs);
  if (r.batch < 1 || r.batch > 4096) return Error("{}.batch: {} is not in 1..4096", where, r.batch);
  if (r.validation < 0) return Error("{}.validation: {} is negative", where, r.validation);
  if (r.optimizer != "sgd" && r.optimizer != "adam") {
    return Error("{}.optimizer: unknown optimizer '{}' (expected sgd or adam)", where, r.optimizer);
  }
  if (r.schedule != "cosine" && r.schedule != "constant") {
    return Error("{}.schedule: unknown schedule '{}' (expected cosine or constant)", where,
                 r.schedule);
  }
  if (!(r.lr > 0 && r.lr < 10)) return Error("{}.lr: {} is not in (0, 10)", where, r.lr);
  if (r.crop_padding < 0 || r.crop_padding > 8) {
    return Error("{}.crop_padding: {} is not in 0..8", where, r.crop_padding);
  }
  if (r.mean.empty() || r.mean.size() != r.std.size()) {
    return Error("{}: mean and std need the same, non-zero, number of channels", where);
  }
  for (float s : r.std) {
    if (!(s > 0)) return Error("{}.std: {} is not positive", where, s);
  }

  for (const std::string& key : r.shape == ModelShape::kConditional ? kShapeB : kShapeA) {
    if (j.contains(key)) {
      return Error("{}.{}: a field of shape {}, not of this recipe's shape {}", where, key,
                   r.shape == ModelShape::kConditional ? "B" : "A",
                   r.shape == ModelShape::kConditional ? "A" : "B");
    }
  }
  if (r.shape == ModelShape::kConditional) {
    const Json* net = f.Child("net");
    if (net == nullptr) return Error("{}: missing field 'net' (shape A)", where);
    HYBRID_RETURN_IF_ERROR(ParseNet(*net, where + ".net", &r.net));
    HYBRID_RETURN_IF_ERROR(f.Get("split_after", &r.split_after, true));
    HYBRID_RETURN_IF_ERROR(f.Get("split", &r.split));
    const int stages = static_cast<int>(r.net.stages.size());
    if (r.split_after < 0 || r.split_after >= stages - 1) {
      return Error("{}.split_after: {} leaves no stage on one side (the net has {} stages)", where,
                   r.split_after, stages);
    }
    if (r.split != "int8" && r.split != "f32") {
      return Error("{}.split: unknown form '{}' (expected int8 or f32)", where, r.split);
    }
    if (r.split == "int8") {
      const StageSpec& first = r.net.stages[r.split_after + 1];
      if (first.precision != graph::Precision::kF32 ||
          (first.stride == 1 && first.channels == r.net.stages[r.split_after].channels)) {
        return Error(
            "{}.split: an int8 split needs the first cloud stage in f32 and changing "
            "resolution or channels (its convolutions alone read the split)",
            where);
      }
    }
    const Json* exits = f.Child("exits");
    if (exits == nullptr || !exits->is_array() || exits->empty()) {
      return Error("{}.exits: expected a non-empty list of exits (shape A)", where);
    }
    float total = 0;
    for (size_t i = 0; i < exits->size(); ++i) {
      const std::string ep = fmt::format("{}.exits[{}]", where, i);
      Fields e((*exits)[i], ep);
      HYBRID_RETURN_IF_ERROR(e.Object());
      ExitSpec ex;
      HYBRID_RETURN_IF_ERROR(e.Get("after_stage", &ex.after_stage, true));
      HYBRID_RETURN_IF_ERROR(e.Get("weight", &ex.weight));
      if (const Json* head = e.Child("head")) {
        HYBRID_RETURN_IF_ERROR(ParseHead(*head, ep + ".head", &ex.head));
      }
      HYBRID_RETURN_IF_ERROR(e.NoOthers());
      if (ex.after_stage < 0 || ex.after_stage > r.split_after) {
        return Error("{}.after_stage: {} is not an edge stage (0..{})", ep, ex.after_stage,
                     r.split_after);
      }
      if (!(ex.weight > 0 && ex.weight < 1))
        return Error("{}.weight: {} is not in (0, 1)", ep, ex.weight);
      total += ex.weight;
      r.exits.push_back(ex);
    }
    if (total >= 1) return Error("{}.exits: the weights sum to {}, not below 1", where, total);
  } else {
    const Json* edge = f.Child("edge");
    const Json* cloud = f.Child("cloud");
    if (edge == nullptr || cloud == nullptr) {
      return Error("{}: shape B needs the fields 'edge' and 'cloud'", where);
    }
    HYBRID_RETURN_IF_ERROR(ParseNet(*edge, where + ".edge", &r.edge));
    HYBRID_RETURN_IF_ERROR(ParseNet(*cloud, where + ".cloud", &r.cloud));
    if (const Json* router = f.Child("router")) {
      Fields rf(*router, where + ".router");
      HYBRID_RETURN_IF_ERROR(rf.Object());
      RouterSpec& rs = r.router;
      HYBRID_RETURN_IF_ERROR(rf.Get("hidden", &rs.hidden));
      HYBRID_RETURN_IF_ERROR(rf.Get("pooled_features", &rs.pooled_features));
      HYBRID_RETURN_IF_ERROR(rf.Get("target_coverage", &rs.target_coverage));
      HYBRID_RETURN_IF_ERROR(rf.Get("coverage_weight", &rs.coverage_weight));
      HYBRID_RETURN_IF_ERROR(rf.Get("label", &rs.label));
      HYBRID_RETURN_IF_ERROR(rf.Get("rounds", &rs.rounds));
      HYBRID_RETURN_IF_ERROR(rf.Get("router_epochs", &rs.router_epochs));
      HYBRID_RETURN_IF_ERROR(rf.Get("model_epochs", &rs.model_epochs));
      HYBRID_RETURN_IF_ERROR(rf.NoOthers());
      for (int h : rs.hidden) {
        if (h < 1 || h > 4096) return Error("{}.router.hidden: {} is not in 1..4096", where, h);
      }
      if (!(rs.target_coverage > 0 && rs.target_coverage < 1)) {
        return Error("{}.router.target_coverage: {} is not in (0, 1)", where, rs.target_coverage);
      }
      if (!IsRouterLabel(rs.label)) {
        return Error("{}.router.label: unknown label '{}' (expected one of {})", where, rs.label,
                     fmt::join(RouterLabels(), ", "));
      }
      if (rs.rounds < 0 || rs.router_epochs < 0 || rs.model_epochs < 0) {
        return Error("{}.router: rounds and epochs cannot be negative", where);
      }
    }
  }
  HYBRID_RETURN_IF_ERROR(f.NoOthers());
  return r;
}

Result<Recipe> LoadRecipe(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error("cannot read recipe '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseRecipe(ss.str(), path);
}

}  // namespace hybrid::train
