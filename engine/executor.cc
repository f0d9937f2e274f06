#include "engine/executor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "graph/partition.h"
#include "graph/validate.h"

namespace hybrid::engine {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kMaxArenaBytes = size_t{16} << 30;

bool InScope(const graph::Node& n, Scope s) {
  switch (s) {
    case Scope::kAll:
      return true;
    case Scope::kEdge:
      return n.partition == graph::Partition::kEdge;
    case Scope::kCloud:
      return n.partition == graph::Partition::kCloud;
  }
  return false;
}

struct Interval {
  int first, last;  // steps during which the buffer must hold its value
  size_t bytes;
  size_t offset = 0;
};

// Places buffers in one arena so that buffers alive at the same time never overlap: largest
// first, each at the lowest offset that fits between the live buffers placed before it.
size_t PlaceBuffers(std::vector<Interval*> items) {
  std::sort(items.begin(), items.end(),
            [](const Interval* a, const Interval* b) { return a->bytes > b->bytes; });
  std::vector<const Interval*> placed;
  size_t total = 0;
  for (Interval* it : items) {
    std::vector<const Interval*> live;
    for (const Interval* p : placed) {
      if (p->first <= it->last && it->first <= p->last) live.push_back(p);
    }
    std::sort(live.begin(), live.end(),
              [](const Interval* a, const Interval* b) { return a->offset < b->offset; });
    size_t offset = 0;
    for (const Interval* p : live) {
      if (p->offset >= offset + it->bytes) break;
      offset = std::max(offset, p->offset + p->bytes);
    }
    it->offset = offset;
    total = std::max(total, offset + it->bytes);
    placed.push_back(it);
  }
  return total;
}

}  // namespace

std::string_view ToString(Scope s) {
  switch (s) {
    case Scope::kAll:
      return "all";
    case Scope::kEdge:
      return "edge";
    case Scope::kCloud:
      return "cloud";
  }
  return "?";
}

Result<Scope> ParseScope(std::string_view s) {
  if (s == "all") return Scope::kAll;
  if (s == "edge") return Scope::kEdge;
  if (s == "cloud") return Scope::kCloud;
  return Error("unknown partition '{}' (expected all, edge or cloud)", s);
}

Result<std::unique_ptr<Executor>> Executor::Create(std::shared_ptr<const graph::Graph> graph,
                                                   const PlanOptions& options) {
  if (graph == nullptr) return Error("no graph to plan");
  std::unique_ptr<Executor> e(new Executor());
  e->graph_ = std::move(graph);
  e->options_ = options;
  HYBRID_RETURN_IF_ERROR(e->Plan());
  return e;
}

Executor::~Executor() {
  kernels_.clear();
  std::free(arena_);
}

Status Executor::Plan() {
  const graph::Graph& g = *graph_;
  const int num_tensors = static_cast<int>(g.tensors.size());
  if (options_.threads < 0) return Error("thread count {} is negative", options_.threads);
  pool_ = std::make_unique<ThreadPool>(options_.threads);
  HYBRID_ASSIGN_OR_RETURN(backend_,
                          MakeBackend(options_.backend, pool_.get(), options_.float_backend));
  if (backend_->name() != "ref") ref_ = MakeRefBackend();
  HYBRID_ASSIGN_OR_RETURN(shapes_, graph::InferShapes(g, options_.batch));

  std::vector<int> steps;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (InScope(g.nodes[i], options_.scope)) steps.push_back(static_cast<int>(i));
  }
  if (steps.empty()) return Error("the model has no {} partition", ToString(options_.scope));

  switch (options_.scope) {
    case Scope::kAll:
      inputs_ = g.inputs;
      break;
    case Scope::kEdge:
      inputs_ = graph::PartitionInputs(g, graph::Partition::kEdge);
      break;
    case Scope::kCloud:
      inputs_ = graph::PartitionInputs(g, graph::Partition::kCloud);
      break;
  }
  std::vector<int> producer_step(num_tensors, -1);
  for (size_t s = 0; s < steps.size(); ++s)
    producer_step[g.nodes[steps[s]].outputs[0]] = static_cast<int>(s);
  for (const graph::NamedOutput& o : g.outputs) {
    if (producer_step[o.tensor] >= 0) results_.push_back(o.tensor);
  }
  if (options_.scope == Scope::kEdge) {
    for (graph::TensorId t : graph::PartitionInputs(g, graph::Partition::kCloud)) {
      if (producer_step[t] >= 0 &&
          std::find(results_.begin(), results_.end(), t) == results_.end()) {
        results_.push_back(t);
      }
    }
  }

  // Which tensors this plan holds, and which must survive the whole run.
  readable_.assign(num_tensors, false);
  std::vector<bool> planned(num_tensors, false);
  for (graph::TensorId t : inputs_) planned[t] = true;
  for (int s : steps) planned[g.nodes[s].outputs[0]] = true;
  for (graph::TensorId t : inputs_) readable_[t] = true;
  for (graph::TensorId t : results_) readable_[t] = true;
  for (const std::string& name : options_.keep) {
    graph::TensorId t = g.FindTensor(name);
    if (t < 0) return Error("cannot keep '{}': the model has no such tensor", name);
    if (!planned[t]) {
      return Error("cannot keep '{}': the {} partition does not compute it", name,
                   ToString(options_.scope));
    }
    readable_[t] = true;
  }
  if (options_.keep_all) {
    for (int t = 0; t < num_tensors; ++t) readable_[t] = readable_[t] || planned[t];
  }

  // A flatten's output shares its input's buffer: the layout of the bytes does not change.
  std::vector<graph::TensorId> root(num_tensors);
  for (int t = 0; t < num_tensors; ++t) root[t] = t;
  for (int s : steps) {
    const graph::Node& n = g.nodes[s];
    if (n.op == graph::OpType::kFlatten) root[n.outputs[0]] = root[n.inputs[0]];
  }
  const int end = std::numeric_limits<int>::max();
  std::vector<Interval> intervals(num_tensors, Interval{end, -1, 0});
  auto touch = [&](graph::TensorId t, int step) {
    Interval& iv = intervals[root[t]];
    iv.first = std::min(iv.first, step);
    iv.last = std::max(iv.last, step);
  };
  for (graph::TensorId t : inputs_) touch(t, -1);
  for (size_t s = 0; s < steps.size(); ++s) {
    const graph::Node& n = g.nodes[steps[s]];
    for (graph::TensorId t : n.inputs) {
      if (!g.tensors[t].is_constant()) touch(t, static_cast<int>(s));
    }
    touch(n.outputs[0], static_cast<int>(s));
  }
  for (int t = 0; t < num_tensors; ++t) {
    if (planned[t] && readable_[t]) touch(t, end);
  }
  std::vector<Interval*> items;
  for (int t = 0; t < num_tensors; ++t) {
    if (!planned[t]) continue;
    // Sized by the largest tensor sharing the buffer (they are all the same size today).
    size_t bytes = static_cast<size_t>(graph::NumElements(shapes_[t])) * sizeof(float);
    if (bytes > kMaxArenaBytes) {
      return Error("tensor '{}' needs {} bytes at batch {}, more than supported", g.tensors[t].name,
                   bytes, options_.batch);
    }
    Interval& iv = intervals[root[t]];
    iv.bytes = std::max(iv.bytes, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  }
  for (int t = 0; t < num_tensors; ++t) {
    if (planned[t] && root[t] == t) items.push_back(&intervals[t]);
  }
  arena_bytes_ = PlaceBuffers(items);
  if (arena_bytes_ > kMaxArenaBytes) {
    return Error("the plan needs {} bytes of activations at batch {}, more than supported",
                 arena_bytes_, options_.batch);
  }
  arena_ = static_cast<float*>(std::aligned_alloc(kAlignment, std::max(arena_bytes_, kAlignment)));
  if (arena_ == nullptr) return Error("out of memory allocating {} bytes", arena_bytes_);
  std::memset(arena_, 0, std::max(arena_bytes_, kAlignment));
  buffers_.assign(num_tensors, nullptr);
  for (int t = 0; t < num_tensors; ++t) {
    if (planned[t]) {
      buffers_[t] =
          reinterpret_cast<float*>(reinterpret_cast<char*>(arena_) + intervals[root[t]].offset);
    }
  }

  for (int s : steps) {
    const graph::Node& node = g.nodes[s];
    NodeContext ctx;
    ctx.graph = &g;
    ctx.node = &node;
    ctx.pool = pool_.get();
    for (graph::TensorId t : node.inputs) {
      ctx.input_shapes.push_back(shapes_[t]);
      ctx.inputs.push_back(g.tensors[t].is_constant() ? g.ConstantData<float>(t) : buffers_[t]);
    }
    ctx.output_shape = shapes_[node.outputs[0]];
    ctx.output = buffers_[node.outputs[0]];
    Backend* backend = backend_.get();
    StepInfo info{node.name, std::string(backend->NameFor(node)), ""};
    Status supported = backend->Supports(g, node);
    if (!supported.ok()) {
      if (!options_.fallback || ref_ == nullptr) {
        return supported.WithContext(fmt::format("backend '{}' cannot run node '{}' ({})",
                                                 backend->name(), node.name, ToString(node.op)));
      }
      backend = ref_.get();
      info.backend = "ref";
      info.fallback_reason = supported.message();
    }
    Result<std::unique_ptr<Kernel>> kernel = backend->Plan(ctx);
    if (!kernel.ok()) {
      return kernel.status().WithContext(fmt::format("planning node '{}' ({}) on backend '{}'",
                                                     node.name, ToString(node.op),
                                                     backend->name()));
    }
    kernels_.push_back(std::move(*kernel));
    steps_.push_back(std::move(info));
  }
  return Status::Ok();
}

TensorView Executor::Tensor(graph::TensorId id) const { return {buffers_[id], shapes_[id]}; }

Result<TensorView> Executor::Tensor(std::string_view name) const {
  graph::TensorId t = graph_->FindTensor(name);
  if (t < 0) return Error("the model has no tensor '{}'", name);
  if (buffers_[t] == nullptr) {
    return Error("tensor '{}' is not computed by the {} partition", name, ToString(options_.scope));
  }
  if (!readable_[t]) {
    return Error("tensor '{}' is not kept after a run: plan with it in `keep`", name);
  }
  return Tensor(t);
}

Status Executor::SetInput(std::string_view name, std::span<const float> values) {
  graph::TensorId t = graph_->FindTensor(name);
  if (t < 0 || std::find(inputs_.begin(), inputs_.end(), t) == inputs_.end()) {
    return Error("'{}' is not an input of the {} partition", name, ToString(options_.scope));
  }
  TensorView v = Tensor(t);
  if (static_cast<int64_t>(values.size()) != v.size()) {
    return Error("input '{}' takes {} values ({}), got {}", name, v.size(),
                 graph::ShapeToString(v.shape), values.size());
  }
  std::copy(values.begin(), values.end(), v.data);
  return Status::Ok();
}

Status Executor::Run() {
  for (size_t i = 0; i < kernels_.size(); ++i) {
    Status s = kernels_[i]->Run();
    if (!s.ok()) return s.WithContext(fmt::format("node '{}'", steps_[i].node));
  }
  return Status::Ok();
}

}  // namespace hybrid::engine
