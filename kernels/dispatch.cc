// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <hwy/highway.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cctype>

#include "kernels/dispatch.h"

namespace hybrid::kernels {

namespace {
std::string Lower(const char* s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

std::vector<Target> SupportedTargets() {
  std::vector<Target> out;
  // In Highway's numbering a lower bit is a better target, and this order is ascending.
  for (int64_t bit : hwy::SupportedAndGeneratedTargets()) {
    out.push_back({bit, Lower(hwy::TargetName(bit))});
  }
  return out;
}

std::string CurrentTarget() {
  std::vector<Target> t = SupportedTargets();
  return t.empty() ? "none" : t.front().name;
}

void ForceTarget(int64_t bits) { hwy::SetSupportedTargetsForTest(bits); }

bool FindTarget(const std::string& name, Target* out) {
  for (const Target& t : SupportedTargets()) {
    if (t.name == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

}  // namespace hybrid::kernels
