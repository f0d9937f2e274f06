#include "engine/backend.h"

namespace hybrid::engine {

const std::vector<std::string>& BackendNames() {
  static const std::vector<std::string> names = {"ref", "onednn", "xnnpack", "native"};
  return names;
}

Result<std::unique_ptr<Backend>> MakeBackend(std::string_view name, ThreadPool* pool,
                                             std::string_view float_backend) {
  if (name == "ref") return MakeRefBackend();
  if (name == "onednn") return MakeOneDnnBackend(pool);
  if (name == "xnnpack") return MakeXnnpackBackend(pool);
  if (name == "native") return MakeNativeBackend(pool, float_backend);
  std::string known;
  for (const std::string& n : BackendNames()) known += (known.empty() ? "" : ", ") + n;
  return Error("unknown backend '{}' (known: {})", name, known);
}

}  // namespace hybrid::engine
