#include "engine/backend.h"

#include <cstring>

namespace hybrid::engine {

namespace {
class FlattenKernel : public Kernel {
 public:
  FlattenKernel(const float* in, float* out, size_t count) : in_(in), out_(out), count_(count) {}
  Status Run() override {
    if (in_ != out_) std::memcpy(out_, in_, count_ * sizeof(float));
    return Status::Ok();
  }

 private:
  const float* in_;
  float* out_;
  size_t count_;
};
}  // namespace

std::unique_ptr<Kernel> MakeFlattenKernel(const float* in, float* out, size_t count) {
  return std::make_unique<FlattenKernel>(in, out, count);
}

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
