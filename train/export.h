// Writes a trained model into the engine's model graph: both partitions, every exit, the router,
// the normalization, the class names and the recipe as metadata (docs/train.md lists the names).
#pragma once

#include "base/status.h"
#include "graph/ir.h"
#include "train/trainer.h"

namespace hybrid::train {

Result<graph::Graph> ExportGraph(const Trained& t);

}  // namespace hybrid::train
