// Scratch for the integer kernels' AMX code in the kernel tests: Int8ConvScratchBytes(p, rows)
// bytes, 64-byte aligned and filled with garbage (the kernels must not read what they did not
// write); null where the kernels take none.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/int8.h"
#include "kernels/params.h"

namespace hybrid::kernels {

struct Scratch {
  std::vector<uint8_t> bytes;
  uint8_t* data = nullptr;
  Scratch(const Conv2dParams& p, int rows) {
    const size_t n = Int8ConvScratchBytes(p, rows);
    if (n == 0) return;
    bytes.assign(n + 64, 0xA5);
    data = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
  }
};

}  // namespace hybrid::kernels
