// The SIMD targets the kernels were compiled for and the one chosen at run time. Tests and
// benchmarks force each target the machine supports in turn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hybrid::kernels {

struct Target {
  int64_t bits;      // Highway's HWY_* target bit, with kAmxTargetBit for "avx3_amx"
  std::string name;  // "avx3_amx", "avx3_dl", "avx3", "avx2", "scalar", "neon", ...
};

// Marks "avx3_amx": AVX3_DL whose integer convolutions run on AMX tiles (TDPBUSD). Highway 1.0.3
// has no AMX target; this bit is one it reserves for WebAssembly and never sets on x86.
inline constexpr int64_t kAmxTargetBit = int64_t{1} << 60;

// Targets compiled in that this CPU can run, best first.
std::vector<Target> SupportedTargets();

// True when the CPU has AMX-TILE and AMX-INT8 and the OS has granted this process their state.
bool AmxUsable();
// True when the integer convolutions dispatched to AVX3_DL use AMX: usable, and dispatch not
// forced to a target without it. Cheap: the kernels ask on every call.
bool AmxActive();

// The target the next dispatched kernel call will use.
std::string CurrentTarget();

// Restricts dispatch to `bits` (one target); 0 restores the CPU's best. Not thread-safe: call
// before planning, never while kernels run.
void ForceTarget(int64_t bits);

// Finds a supported target by name.
bool FindTarget(const std::string& name, Target* out);

}  // namespace hybrid::kernels
