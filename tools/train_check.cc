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
    // Per sample: an activation quantized to k bits right at a rounding boundary may land on the
    // other level when f32 arithmetic before it runs in another order (libtorch's, the engine's).
    // Such a flip moves one sample's outputs a little; a wrong export moves every sample's.
    const float* e = expected.data_ptr<float>();
    const int64_t per = got.size() / count;
    double scale = 1;
    for (int64_t i = 0; i < got.size(); ++i) scale = std::max(scale, std::fabs(double(e[i])));
    double worst = 0, worst_within = 0;
    int off = 0, off_label = 0;
    for (int64_t n = 0; n < count; ++n) {
      double d = 0;
      int64_t want_top = n * per, got_top = n * per;
      for (int64_t i = n * per; i < (n + 1) * per; ++i) {
        d = std::max(d, std::fabs(double(got.data[i]) - e[i]) / scale);
        if (e[i] > e[want_top]) want_top = i;
        if (got.data[i] > got.data[got_top]) got_top = i;
      }
      if (std::isnan(d)) d = INFINITY;
      worst = std::max(worst, d);
      if (d <= tolerance) {
        worst_within = std::max(worst_within, d);
      } else {
        ++off;
        if (want_top != got_top) ++off_label;
      }
    }
    const int allowed = std::max(1, count / 16);
    const double loose = 100 * tolerance;
    if (log) {
      log(off == 0
              ? fmt::format("check: '{}' on the engine's ref backend: largest difference {:.2e}",
                            o.name, worst)
              : fmt::format("check: '{}' on the engine's ref backend: largest difference "
                            "{:.2e} on {} of {} images (rounding-boundary flips), {:.2e} on "
                            "the others",
                            o.name, worst, off, count, worst_within));
    }
    if (off > allowed || !(worst <= loose) || off_label > 0) {
      return Error(
          "output '{}' of the written model differs from the trainer's by up to {:.3e} (relative) "
          "on {} of {} images ({} with another top class): allowed are {:.0e} everywhere, or up "
          "to {:.0e} on at most {} images with the same top class",
          o.name, worst, off, count, off_label, tolerance, loose, allowed);
    }
  }
  return Status::Ok();
}

}  // namespace hybrid::tools
