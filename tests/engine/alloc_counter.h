// Counts heap allocations of the whole process (every thread, C and C++, our code and the
// libraries'), so that tests can prove that running a planned graph allocates nothing.
#pragma once

#include <cstdint>

namespace hybrid::testing {

// Number of malloc-family calls so far.
int64_t AllocationCount();

// False when a sanitizer owns the allocator, which this counter cannot then wrap.
bool AllocationCountingWorks();

}  // namespace hybrid::testing
