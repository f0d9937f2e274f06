// clang-format off: the Highway configuration must precede every Highway header.
#include "kernels/hwy_config.h"
// clang-format on

#include <hwy/highway.h>
#include <hwy/targets.h>

#include <algorithm>
#include <atomic>
#include <cctype>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels/dispatch.h"

namespace hybrid::kernels {

namespace {
std::string Lower(const char* s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// -1: AMX when usable; 0: off; 1: on (forced, and usable).
std::atomic<int> g_amx{-1};
}  // namespace

bool AmxUsable() {
  static const bool usable = [] {
#if defined(__x86_64__) && defined(__linux__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
    const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
    if (!tile || !int8) return false;
    // Linux hands out the 8 KB of tile data only on request (ARCH_REQ_XCOMP_PERM for
    // XFEATURE_XTILEDATA); without it the first tile instruction faults.
    constexpr int64_t kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}

bool AmxActive() {
  const int state = g_amx.load(std::memory_order_relaxed);
  if (state >= 0) return state == 1;
  return AmxUsable();
}

std::vector<Target> SupportedTargets() {
  std::vector<Target> out;
  // In Highway's numbering a lower bit is a better target, and this order is ascending.
  for (int64_t bit : hwy::SupportedAndGeneratedTargets()) {
    if (bit == HWY_AVX3_DL && AmxUsable()) out.push_back({bit | kAmxTargetBit, "avx3_amx"});
    out.push_back({bit, Lower(hwy::TargetName(bit))});
  }
  return out;
}

std::string CurrentTarget() {
  const std::vector<int64_t> bits = hwy::SupportedAndGeneratedTargets();
  if (bits.empty()) return "none";
  if (bits.front() == HWY_AVX3_DL && AmxActive()) return "avx3_amx";
  return Lower(hwy::TargetName(bits.front()));
}

void ForceTarget(int64_t bits) {
  g_amx.store(bits == 0 ? -1 : ((bits & kAmxTargetBit) != 0 && AmxUsable()) ? 1 : 0);
  hwy::SetSupportedTargetsForTest(bits & ~kAmxTargetBit);
}

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
