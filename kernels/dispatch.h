// The SIMD targets the kernels were compiled for and the one chosen at run time. Tests and
// benchmarks force each target the machine supports in turn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hybrid::kernels {

struct Target {
  int64_t bits;      // Highway's HWY_* target bit
  std::string name;  // "avx3_dl", "avx3", "avx2", "scalar", "neon", ...
};

// Targets compiled in that this CPU can run, best first.
std::vector<Target> SupportedTargets();

// The target the next dispatched kernel call will use.
std::string CurrentTarget();

// Restricts dispatch to `bits` (one target); 0 restores the CPU's best. Not thread-safe: call
// before planning, never while kernels run.
void ForceTarget(int64_t bits);

// Finds a supported target by name.
bool FindTarget(const std::string& name, Target* out);

}  // namespace hybrid::kernels
