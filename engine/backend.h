// A backend turns one graph node into a planned Kernel bound to its buffers. Backends are created
// once per executor; all their costly work (weight packing, primitive creation) happens in Plan.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/thread_pool.h"
#include "graph/ir.h"

namespace hybrid::engine {

// What a backend sees of a node when planning it. Shapes are at the planned batch size.
struct NodeContext {
  const graph::Graph* graph = nullptr;
  const graph::Node* node = nullptr;
  // Nodes the backend fused after `node` (FusionPlan): the kernel computes the last one's output.
  std::vector<const graph::Node*> fused;
  std::vector<graph::Shape> input_shapes;
  graph::Shape output_shape;  // of the last node
  // One pointer per node input: arena buffers for activations, the model's bytes for constants,
  // null for a tensor the backend holds in its own form.
  std::vector<const float*> inputs;
  float* output = nullptr;  // null when the backend holds the output in its own form
  ThreadPool* pool = nullptr;

  template <typename T>
  const T& attrs() const {
    return std::get<T>(node->attrs);
  }
};

// A node planned for execution: Run computes its output from its inputs, allocating nothing.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Status Run() = 0;
};

// What a plan runs, as the executor offers it to a backend before planning any node.
struct PlanScope {
  const graph::Graph* graph = nullptr;
  std::vector<int> steps;                             // node indices, in the order they run
  std::vector<bool> readable;                         // per tensor: read after the run
  const std::vector<graph::Shape>* shapes = nullptr;  // per tensor, at the planned batch
};

// How a backend wants to run a scope, decided before any node is planned.
struct FusionPlan {
  // Chains of nodes that one kernel runs as one step, in order: each node after the first reads
  // the previous one's output, which nothing else reads, and its other inputs are constants.
  std::vector<std::vector<int>> chains;
  // Tensors the backend passes between its own kernels in its own form (bitpacked, say): the
  // executor gives them no buffer and they cannot be read.
  std::vector<graph::TensorId> internal;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // The backend that runs `node` once planned: this one, or one it delegates to.
  virtual std::string_view NameFor(const graph::Node&) const { return name(); }
  // Ok when this backend can run the node; otherwise an error saying why not.
  virtual Status Supports(const graph::Graph& graph, const graph::Node& node) const = 0;
  // Chooses what to fuse in `scope`; called once, before Plan. By default nothing is fused.
  virtual FusionPlan Fuse(const PlanScope& scope) {
    (void)scope;
    return {};
  }
  // Creates the kernel of a supported node (with the nodes fused after it); buffers stay where
  // `ctx` says for the kernel's life.
  virtual Result<std::unique_ptr<Kernel>> Plan(const NodeContext& ctx) = 0;
};

// The kernel of a flatten node: the executor aliases its output to its input, so it copies only
// when the two differ.
std::unique_ptr<Kernel> MakeFlattenKernel(const float* in, float* out, size_t count);

// Names accepted by MakeBackend, in order of preference for a user.
const std::vector<std::string>& BackendNames();

// Creates the named backend ("ref", "onednn", "xnnpack", "native") running on `pool`; the native
// backend runs float nodes on `float_backend`.
Result<std::unique_ptr<Backend>> MakeBackend(std::string_view name, ThreadPool* pool,
                                             std::string_view float_backend = "onednn");

std::unique_ptr<Backend> MakeRefBackend();
Result<std::unique_ptr<Backend>> MakeOneDnnBackend(ThreadPool* pool);
Result<std::unique_ptr<Backend>> MakeXnnpackBackend(ThreadPool* pool);
Result<std::unique_ptr<Backend>> MakeNativeBackend(ThreadPool* pool,
                                                   std::string_view float_backend);

}  // namespace hybrid::engine
