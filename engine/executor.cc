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
  std::vector<bool> produced(num_tensors, false);
  for (int s : steps) produced[g.nodes[s].outputs[0]] = true;
  if (!options_.outputs.empty()) {
    // Only what the requested outputs need: walk back from them through the scope's nodes.
    std::vector<int> producer(num_tensors, -1);
    for (int s : steps) producer[g.nodes[s].outputs[0]] = s;
    std::vector<bool> needed(num_tensors, false), keep_node(g.nodes.size(), false);
    std::vector<graph::TensorId> todo;
    for (const std::string& name : options_.outputs) {
      const graph::NamedOutput* o = g.FindOutput(name);
      const graph::TensorId t = o != nullptr ? o->tensor : g.FindTensor(name);
      if (t < 0) return Error("the model has no output or tensor '{}'", name);
      if (!produced[t]) {
        return Error("'{}' is not computed by the {} partition", name, ToString(options_.scope));
      }
      results_.push_back(t);
      todo.push_back(t);
    }
    while (!todo.empty()) {
      const graph::TensorId t = todo.back();
      todo.pop_back();
      if (needed[t]) continue;
      needed[t] = true;
      if (producer[t] < 0 || keep_node[producer[t]]) continue;
      keep_node[producer[t]] = true;
      for (graph::TensorId in : g.nodes[producer[t]].inputs) todo.push_back(in);
    }
    std::erase_if(steps, [&](int s) { return !keep_node[s]; });
    std::erase_if(inputs_, [&](graph::TensorId t) { return !needed[t]; });
    std::fill(produced.begin(), produced.end(), false);
    for (int s : steps) produced[g.nodes[s].outputs[0]] = true;
  } else {
    for (const graph::NamedOutput& o : g.outputs) {
      if (produced[o.tensor]) results_.push_back(o.tensor);
    }
  }
  if (options_.scope == Scope::kEdge && options_.outputs.empty()) {
    for (graph::TensorId t : graph::PartitionInputs(g, graph::Partition::kCloud)) {
      if (produced[t] && std::find(results_.begin(), results_.end(), t) == results_.end()) {
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

  // The backend's fusions: each chain becomes one step, and the tensors inside chains and those
  // the backend keeps in its own form get no buffer.
  HYBRID_ASSIGN_OR_RETURN(std::vector<std::vector<int>> groups, FuseSteps(steps, planned));
  fused_ = held_by_backend_;
  for (const auto& group : groups) {
    for (size_t i = 0; i + 1 < group.size(); ++i) fused_[g.nodes[group[i]].outputs[0]] = true;
  }
  for (int t = 0; t < num_tensors; ++t) planned[t] = planned[t] && !fused_[t];

  // A flatten's output shares its input's buffer: the layout of the bytes does not change.
  std::vector<graph::TensorId> root(num_tensors);
  for (int t = 0; t < num_tensors; ++t) root[t] = t;
  for (const auto& group : groups) {
    const graph::Node& n = g.nodes[group[0]];
    if (group.size() == 1 && n.op == graph::OpType::kFlatten && planned[n.inputs[0]]) {
      root[n.outputs[0]] = root[n.inputs[0]];
    }
  }
  const int end = std::numeric_limits<int>::max();
  std::vector<Interval> intervals(num_tensors, Interval{end, -1, 0});
  auto touch = [&](graph::TensorId t, int step) {
    if (!planned[t]) return;
    Interval& iv = intervals[root[t]];
    iv.first = std::min(iv.first, step);
    iv.last = std::max(iv.last, step);
  };
  for (graph::TensorId t : inputs_) touch(t, -1);
  for (size_t s = 0; s < groups.size(); ++s) {
    for (int node : groups[s]) {
      for (graph::TensorId t : g.nodes[node].inputs) {
        if (!g.tensors[t].is_constant()) touch(t, static_cast<int>(s));
      }
      touch(g.nodes[node].outputs[0], static_cast<int>(s));
    }
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

  for (const auto& group : groups) {
    const graph::Node& node = g.nodes[group[0]];
    const graph::Node& last = g.nodes[group.back()];
    NodeContext ctx;
    ctx.graph = &g;
    ctx.node = &node;
    ctx.pool = pool_.get();
    for (graph::TensorId t : node.inputs) {
      ctx.input_shapes.push_back(shapes_[t]);
      ctx.inputs.push_back(g.tensors[t].is_constant() ? g.ConstantData<float>(t) : buffers_[t]);
    }
    ctx.output_shape = shapes_[last.outputs[0]];
    ctx.output = buffers_[last.outputs[0]];
    StepInfo info{node.name, "", "", {}};
    for (size_t i = 1; i < group.size(); ++i) {
      ctx.fused.push_back(&g.nodes[group[i]]);
      info.fused.push_back(g.nodes[group[i]].name);
    }
    Backend* backend = backend_.get();
    info.backend = std::string(backend->NameFor(node));
    // A fused chain was the backend's own choice; single nodes may fall back to ref.
    Status supported = group.size() > 1 ? Status::Ok() : backend->Supports(g, node);
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

Result<std::vector<std::vector<int>>> Executor::FuseSteps(const std::vector<int>& steps,
                                                          const std::vector<bool>& planned) {
  const graph::Graph& g = *graph_;
  const int num_tensors = static_cast<int>(g.tensors.size());
  FusionPlan plan = backend_->Fuse(PlanScope{&g, steps, readable_, &shapes_});
  // The plan is the backend's; check that it keeps the graph's meaning before trusting it.
  std::vector<int> consumers(num_tensors, 0);
  for (const graph::Node& n : g.nodes) {
    for (graph::TensorId t : n.inputs) ++consumers[t];
  }
  std::vector<int> step_of(g.nodes.size(), -1), chain_of(g.nodes.size(), -1);
  for (size_t s = 0; s < steps.size(); ++s) step_of[steps[s]] = static_cast<int>(s);
  auto bad = [&](const std::string& why) {
    return Error("backend '{}' proposed an invalid fusion: {}", backend_->name(), why);
  };
  for (size_t c = 0; c < plan.chains.size(); ++c) {
    const std::vector<int>& chain = plan.chains[c];
    if (chain.size() < 2) return bad("a chain of fewer than two nodes");
    for (size_t i = 0; i < chain.size(); ++i) {
      const int n = chain[i];
      if (n < 0 || n >= static_cast<int>(g.nodes.size()) || step_of[n] < 0) {
        return bad(fmt::format("node {} is not in the plan", n));
      }
      if (chain_of[n] >= 0) return bad(fmt::format("node '{}' is in two chains", g.nodes[n].name));
      chain_of[n] = static_cast<int>(c);
      if (i == 0) continue;
      const graph::Node& prev = g.nodes[chain[i - 1]];
      const graph::Node& node = g.nodes[n];
      const graph::TensorId link = prev.outputs[0];
      if (node.inputs.empty() || node.inputs[0] != link || consumers[link] != 1 ||
          readable_[link]) {
        return bad(fmt::format("'{}' does not read '{}' alone", node.name, prev.name));
      }
      for (size_t k = 1; k < node.inputs.size(); ++k) {
        if (!g.tensors[node.inputs[k]].is_constant()) {
          return bad(fmt::format("'{}' reads an activation besides the chain", node.name));
        }
      }
    }
  }
  held_by_backend_.assign(num_tensors, false);
  for (graph::TensorId t : plan.internal) {
    if (t < 0 || t >= num_tensors || !planned[t] || readable_[t] ||
        std::find(inputs_.begin(), inputs_.end(), t) != inputs_.end()) {
      return bad(fmt::format("tensor {} cannot be held by the backend", t));
    }
    held_by_backend_[t] = true;
  }
  std::vector<std::vector<int>> groups;
  for (int s : steps) {
    if (chain_of[s] < 0) {
      groups.push_back({s});
    } else if (plan.chains[chain_of[s]][0] == s) {
      groups.push_back(plan.chains[chain_of[s]]);
    }
  }
  return groups;
}

TensorView Executor::Tensor(graph::TensorId id) const { return {buffers_[id], shapes_[id]}; }

Result<TensorView> Executor::Tensor(std::string_view name) const {
  graph::TensorId t = graph_->FindTensor(name);
  if (t < 0) return Error("the model has no tensor '{}'", name);
  if (buffers_[t] == nullptr && fused_[t]) {
    return Error(
        "tensor '{}' is not kept after a run (the {} backend fused it away): plan with "
        "it in `keep`",
        name, backend_->name());
  }
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
