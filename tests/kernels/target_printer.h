// Lets GoogleTest print a SIMD target by name in test lists and failures.
#pragma once

#include <ostream>

#include "kernels/dispatch.h"

namespace hybrid::kernels {
inline void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }
}  // namespace hybrid::kernels
