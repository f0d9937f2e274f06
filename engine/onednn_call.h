// Engine-internal: the oneDNN call behind a kernel planned by the onednn backend, so that a
// benchmark can run the very same primitives back to back without the executor around them.
#pragma once

#include <oneapi/dnnl/dnnl.h>

#include <optional>
#include <vector>

#include "engine/backend.h"

namespace hybrid::engine {

struct OneDnnCall {
  dnnl_primitive_t primitive = nullptr;
  dnnl_stream_t stream = nullptr;
  const std::vector<dnnl_exec_arg_t>* args = nullptr;  // owned by the kernel
};

// The primitive, stream and bound arguments of `kernel`; nullopt when another backend planned it
// or when it runs no primitive (an aliased flatten).
std::optional<OneDnnCall> OneDnnCallOf(const Kernel& kernel);

}  // namespace hybrid::engine
