// Plans a graph once (order, shapes, buffers, per-node backend, kernels) and runs it many times
// without allocating.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/backend.h"
#include "graph/ir.h"

namespace hybrid::engine {

// Which nodes a plan runs.
enum class Scope { kAll, kEdge, kCloud };
std::string_view ToString(Scope s);
Result<Scope> ParseScope(std::string_view s);

struct PlanOptions {
  int batch = 1;
  std::string backend = "ref";
  // With backend "native": the backend of the nodes the native kernels do not cover.
  std::string float_backend = "onednn";
  // Nodes the backend cannot run go to the ref backend; without fallback they are an error.
  bool fallback = true;
  int threads = 0;  // 0: one per core
  Scope scope = Scope::kAll;
  // Named outputs (or tensors) to compute: the plan keeps only the scope's nodes they need, and
  // only the inputs those read. Empty: everything in the scope.
  std::vector<std::string> outputs;
  // Tensors to keep readable after Run besides the named outputs and the scope's results.
  std::vector<std::string> keep;
  bool keep_all = false;
};

// A tensor's buffer and shape at the planned batch size.
struct TensorView {
  float* data = nullptr;
  graph::Shape shape;
  int64_t size() const { return graph::NumElements(shape); }
  std::span<float> span() const { return {data, static_cast<size_t>(size())}; }
};

struct StepInfo {
  std::string node;
  std::string backend;
  std::string fallback_reason;     // why the chosen backend refused the node, when it fell back
  std::vector<std::string> fused;  // nodes the backend runs in the same kernel, after `node`
};

class Executor {
 public:
  // Plans `graph`; every allocation and every backend primitive is made here.
  static Result<std::unique_ptr<Executor>> Create(std::shared_ptr<const graph::Graph> graph,
                                                  const PlanOptions& options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Tensors to fill before Run: graph inputs, or for the cloud scope what the edge sends (those the
  // planned outputs need).
  const std::vector<graph::TensorId>& inputs() const { return inputs_; }
  // Tensors the scope produces for others: named outputs in scope, plus for the edge scope the
  // activations the cloud partition reads.
  const std::vector<graph::TensorId>& results() const { return results_; }

  // Buffer of an input to write into (before Run) or of a kept tensor to read (after Run).
  Result<TensorView> Tensor(std::string_view name) const;
  TensorView Tensor(graph::TensorId id) const;
  // Copies `values` into the named input; expects exactly its number of elements.
  Status SetInput(std::string_view name, std::span<const float> values);

  // Runs the planned nodes in order. Allocates nothing.
  Status Run();

  const graph::Graph& graph() const { return *graph_; }
  const PlanOptions& options() const { return options_; }
  const std::vector<StepInfo>& steps() const { return steps_; }
  // The planned kernels, one per step (a fused chain is one step), for benchmarks that run them
  // without the executor.
  const std::vector<std::unique_ptr<Kernel>>& kernels() const { return kernels_; }
  size_t arena_bytes() const { return arena_bytes_; }

 private:
  Executor() = default;
  Status Plan();
  // The steps as groups of nodes: the backend's fusion plan, checked, applied to `steps`.
  Result<std::vector<std::vector<int>>> FuseSteps(const std::vector<int>& steps,
                                                  const std::vector<bool>& planned);

  std::shared_ptr<const graph::Graph> graph_;
  PlanOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  // Declared before kernels_ so that kernels, which may refer to their backend, die first.
  std::unique_ptr<Backend> backend_, ref_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<StepInfo> steps_;
  std::vector<graph::Shape> shapes_;
  std::vector<float*> buffers_;        // per tensor: arena pointer, or null when not planned
  std::vector<bool> readable_;         // per tensor: kept intact after Run
  std::vector<bool> fused_;            // per tensor: computed inside a fused step, no buffer
  std::vector<bool> held_by_backend_;  // per tensor: passed between kernels in the backend's form
  std::vector<graph::TensorId> inputs_, results_;
  float* arena_ = nullptr;
  size_t arena_bytes_ = 0;
};

}  // namespace hybrid::engine
