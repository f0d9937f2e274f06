// The check `hybrid train` runs on the model file it writes, shared with the tests.
#pragma once

#include <string>

#include "base/status.h"
#include "train/trainer.h"

namespace hybrid::tools {

// Runs the model file at `path` on the engine's ref backend over the first `count` validation
// images and compares every named output with the trainer's eval-mode values, relative to the
// output's largest magnitude (at least 1): within `tolerance` on every image, or within
// 100 * `tolerance` with the same top class on at most max(1, count / 16) images (a k-bit
// activation on the other side of a rounding boundary). Reports each output through `log`.
Status CheckExport(const train::Trained& t, const std::string& path, int count, double tolerance,
                   const std::function<void(const std::string&)>& log = {});

}  // namespace hybrid::tools
