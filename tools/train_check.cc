#include "tools/train_check.h"

#include <fmt/format.h>

#include <cmath>
#include <span>

#include "engine/executor.h"
#include "graph/model_file.h"

namespace hybrid::tools {

Status CheckExport(const train::Trained& t, const std::string& path, int count, double tolerance,
                   const std::function<void(const std::string&)>& log) {
  HYBRID_ASSIGN_OR_RETURN(graph::Graph loaded, graph::LoadModelFile(path));
  auto g = std::make_shared<const graph::Graph>(std::move(loaded));
  count = static_cast<int>(std::min<int64_t>(count, t.splits.validation.size()));
  if (count == 0) return Status::Ok();
  const torch::Tensor images = t.splits.validation.images.narrow(0, 0, count);
  const auto want = train::NamedOutputs(t, images);
  engine::PlanOptions options;
  options.backend = "ref";
  options.batch = count;
  HYBRID_ASSIGN_OR_RETURN(auto ex, engine::Executor::Create(g, options));
  const torch::Tensor nhwc = images.permute({0, 2, 3, 1}).contiguous();
  HYBRID_RETURN_IF_ERROR(ex->SetInput(
      "image", std::span<const float>(nhwc.data_ptr<float>(), static_cast<size_t>(nhwc.numel()))));
  if (auto it = want.find("router.features"); it != want.end()) {
    const torch::Tensor f = it->second.contiguous();
    HYBRID_RETURN_IF_ERROR(
        ex->SetInput("router.features",
                     std::span<const float>(f.data_ptr<float>(), static_cast<size_t>(f.numel()))));
  }
  HYBRID_RETURN_IF_ERROR(ex->Run());
  for (const graph::NamedOutput& o : g->outputs) {
    auto it = want.find(o.name);
    if (it == want.end()) return Error("the trainer has no output '{}'", o.name);
    const torch::Tensor expected = it->second.contiguous().flatten();
    const engine::TensorView got = ex->Tensor(o.tensor);
    if (got.size() != expected.numel()) {
      return Error("output '{}': the engine computes {} values, the trainer {}", o.name, got.size(),
                   expected.numel());
    }
    const float* e = expected.data_ptr<float>();
    double scale = 1, worst = 0;
    for (int64_t i = 0; i < got.size(); ++i) scale = std::max(scale, std::fabs(double(e[i])));
    for (int64_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(double(got.data[i]) - e[i]) / scale);
    }
    if (log) {
      log(fmt::format("check: '{}' on the engine's ref backend: largest difference {:.2e}", o.name,
                      worst));
    }
    if (!(worst <= tolerance)) {
      return Error(
          "output '{}' of the written model differs from the trainer's by {:.3e} "
          "(relative), more than {:.0e}",
          o.name, worst, tolerance);
    }
  }
  return Status::Ok();
}

}  // namespace hybrid::tools
