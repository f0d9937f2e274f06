#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>

namespace hybrid::train {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kEvalBatch = 500;

void Log(const TrainOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

// Checks what the modules cannot report themselves: stride 2 on an odd size in a quantized stage
// (its pooled shortcut and its convolution would disagree).
Status CheckNet(const NetSpec& spec, int size, const std::string& where) {
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    const StageSpec& st = spec.stages[s];
    if (st.stride == 2) {
      if (st.precision != graph::Precision::kF32 && size % 2 != 0) {
        return Error("{}.stages[{}]: a quantized stage cannot stride over an odd size ({})", where,
                     s, size);
      }
      size = (size + 1) / 2;
    }
  }
  return Status::Ok();
}

int LastChannels(const NetSpec& spec) { return spec.stages.back().channels; }

// Sample order for an epoch: a permutation seeded by the recipe's seed and the epoch.
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

std::vector<float> PadValues(const Recipe& r) {
  std::vector<float> v;
  for (size_t c = 0; c < r.mean.size(); ++c) v.push_back((0.f - r.mean[c]) / r.std[c]);
  return v;
}

// One optimizer over `params` as the recipe asks.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const Recipe& r,
                                                       std::vector<torch::Tensor> params,
                                                       double lr) {
  if (r.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(lr).weight_decay(r.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      params, torch::optim::SGDOptions(lr).momentum(r.momentum).weight_decay(r.weight_decay));
}

void SetLr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// The cosine schedule (or a constant rate) at `progress` in [0, 1].
double LrAt(const Recipe& r, double base, double progress) {
  if (r.schedule == "constant") return base;
  return base * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
}

std::vector<torch::Tensor> Parameters(const std::vector<torch::nn::Module*>& modules) {
  std::vector<torch::Tensor> params;
  for (torch::nn::Module* m : modules) {
    for (const torch::Tensor& p : m->parameters()) params.push_back(p);
  }
  return params;
}

torch::Tensor Rows(const torch::Tensor& t, const std::vector<int64_t>& order, int64_t begin,
                   int64_t end) {
  const torch::Tensor idx =
      torch::from_blob(const_cast<int64_t*>(order.data()) + begin, {end - begin}, torch::kInt64);
  return t.index_select(0, idx);
}

// libtorch keys an optimizer's per-parameter state by the parameter's address, which a new
// process does not share, and its own loading crashed on resume (1.13): the checkpoint stores
// each parameter's state by position instead.
std::string StateKey(const torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

void SaveOptimizer(torch::optim::Optimizer& opt, torch::serialize::OutputArchive& a) {
  int i = 0;
  for (const auto& group : opt.param_groups()) {
    for (const torch::Tensor& p : group.params()) {
      const int k = i++;
      auto it = opt.state().find(StateKey(p));
      if (it == opt.state().end()) continue;
      if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
        if (sgd->momentum_buffer().defined()) {
          a.write(fmt::format("p{}.momentum", k), sgd->momentum_buffer());
        }
      } else if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(it->second.get())) {
        a.write(fmt::format("p{}.step", k), torch::tensor(adam->step()));
        a.write(fmt::format("p{}.exp_avg", k), adam->exp_avg());
        a.write(fmt::format("p{}.exp_avg_sq", k), adam->exp_avg_sq());
      }
    }
  }
}

// Restores the per-parameter state the archive holds for `opt`'s kind; returns how many.
int LoadOptimizer(torch::optim::Optimizer& opt, torch::serialize::InputArchive& a) {
  const bool adam = dynamic_cast<torch::optim::Adam*>(&opt) != nullptr;
  int i = 0, restored = 0;
  for (const auto& group : opt.param_groups()) {
    for (const torch::Tensor& p : group.params()) {
      const int k = i++;
      torch::Tensor t;
      if (!adam) {
        if (!a.try_read(fmt::format("p{}.momentum", k), t)) continue;
        auto st = std::make_unique<torch::optim::SGDParamState>();
        st->momentum_buffer(t);
        opt.state()[StateKey(p)] = std::move(st);
        ++restored;
      } else {
        torch::Tensor step, avg, sq;
        if (!a.try_read(fmt::format("p{}.step", k), step)) continue;
        a.read(fmt::format("p{}.exp_avg", k), avg);
        a.read(fmt::format("p{}.exp_avg_sq", k), sq);
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(step.item<int64_t>());
        st->exp_avg(avg);
        st->exp_avg_sq(sq);
        opt.state()[StateKey(p)] = std::move(st);
        ++restored;
      }
    }
  }
  return restored;
}

// The networks present, by the names checkpoints store them under.
std::vector<std::pair<std::string, torch::nn::Module*>> Named(const Nets& nets) {
  std::vector<std::pair<std::string, torch::nn::Module*>> named;
  auto add = [&](const char* name, const auto& holder) {
    if (!holder.is_empty()) named.emplace_back(name, holder.ptr().get());
  };
  add("net", nets.net);
  add("edge", nets.edge);
  add("cloud", nets.cloud);
  add("router", nets.router);
  return named;
}

void SaveCheckpoint(const Trained& t, torch::optim::Optimizer* opt, int phase, int step,
                    const std::string& path) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, module] : Named(t.nets)) {
    torch::serialize::OutputArchive sub;
    module->save(sub);
    archive.write(name, sub);
  }
  if (opt != nullptr) {
    torch::serialize::OutputArchive sub;
    SaveOptimizer(*opt, sub);
    archive.write("optimizer", sub);
  }
  archive.write("phase", torch::tensor(static_cast<int64_t>(phase)));
  archive.write("step", torch::tensor(static_cast<int64_t>(step)));
  archive.write("epoch_loss", torch::tensor(t.epoch_loss, torch::kFloat64));
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

// Where a checkpoint left off.
struct Resumed {
  int phase = 0, step = 0;   // done
  int optimizer_states = 0;  // parameters whose optimizer state it restored
};

// Restores the networks (and the optimizer when given).
Result<Resumed> LoadCheckpoint(Trained& t, torch::optim::Optimizer* opt, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    for (const auto& [name, module] : Named(t.nets)) {
      torch::serialize::InputArchive sub;
      archive.read(name, sub);
      module->load(sub);
    }
    Resumed at;
    if (opt != nullptr) {
      torch::serialize::InputArchive sub;
      if (archive.try_read("optimizer", sub)) at.optimizer_states = LoadOptimizer(*opt, sub);
    }
    torch::Tensor phase, step, losses;
    archive.read("phase", phase);
    archive.read("step", step);
    archive.read("epoch_loss", losses);
    t.epoch_loss.assign(losses.data_ptr<double>(), losses.data_ptr<double>() + losses.numel());
    at.phase = static_cast<int>(phase.item<int64_t>());
    at.step = static_cast<int>(step.item<int64_t>());
    return at;
  } catch (const c10::Error& e) {
    return Error("cannot resume from '{}': not a checkpoint of this recipe ({})", path,
                 e.what_without_backtrace());
  }
}

std::string Percent(double v) { return fmt::format("{:.2f}%", 100 * v); }

std::string Summary(const std::map<std::string, double>& acc) {
  std::string s;
  for (const auto& [name, v] : acc) s += fmt::format(" {} {}", name, Percent(v));
  return s;
}

// Shape B's router training data for a set of samples: features and the target of the router's
// probability of sending (RouterSpec::label).
struct RouterData {
  torch::Tensor features, label;
  double gains = 0, losses = 0;  // shares of the samples that sending helps, that it hurts
};

RouterData MakeRouterData(const Trained& t, const Samples& s, const std::string& label) {
  torch::NoGradGuard no_grad;
  t.nets.Train(false);
  std::vector<torch::Tensor> feats, labels;
  double gains = 0, losses = 0;
  for (int64_t b = 0; b < s.size(); b += kEvalBatch) {
    const int64_t e = std::min(s.size(), b + kEvalBatch);
    const torch::Tensor x = s.images.narrow(0, b, e - b);
    const torch::Tensor y = s.labels.narrow(0, b, e - b);
    const NetOutputs edge = t.nets.edge.ptr()->forward(x);
    const NetOutputs cloud = t.nets.cloud.ptr()->forward(x);
    const torch::Tensor probs = torch::softmax(edge.logits, 1);
    feats.push_back(
        RouterFeatures(probs, t.recipe.router.pooled_features ? edge.pooled : torch::Tensor()));
    const torch::Tensor edge_right = (edge.logits.argmax(1) == y).to(torch::kFloat32);
    const torch::Tensor cloud_right = (cloud.logits.argmax(1) == y).to(torch::kFloat32);
    const torch::Tensor yi = y.unsqueeze(1);
    labels.push_back(RouterTarget(label, edge_right, cloud_right, probs.gather(1, yi).squeeze(1),
                                  torch::softmax(cloud.logits, 1).gather(1, yi).squeeze(1)));
    gains += ((1 - edge_right) * cloud_right).sum().item<double>();
    losses += (edge_right * (1 - cloud_right)).sum().item<double>();
  }
  const double n = std::max<int64_t>(1, s.size());
  return {torch::cat(feats), torch::cat(labels), gains / n, losses / n};
}

void TrainRouter(Trained& t, const TrainOptions& o, int round) {
  const RouterSpec& rs = t.recipe.router;
  // The rounds' routers weight the models' losses by r, the probability the paper's proxy
  // gives; the recipe's label is for the router that ships, trained last.
  const RouterData d =
      MakeRouterData(t, t.splits.train, round == rs.rounds ? rs.label : std::string("proxy"));
  FitRouter(t.nets.router, d.features, d.label, rs, t.recipe.batch, t.recipe.seed + 17 + round,
            [&](int epoch, double loss) {
              Log(o, fmt::format("round {} router epoch {}/{}  loss {:.4f}  edge wrong, cloud "
                                 "right {:.2f}%  edge right, cloud wrong {:.2f}%",
                                 round, epoch + 1, rs.router_epochs, loss, 100 * d.gains,
                                 100 * d.losses));
            });
}

}  // namespace

int UseThreads(int threads) {
  const int n =
      threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

void FitRouter(Router& router, const torch::Tensor& features, const torch::Tensor& labels,
               const RouterSpec& rs, int batch, uint64_t seed,
               const std::function<void(int epoch, double loss)>& epoch_done) {
  router->Standardize(features);
  torch::optim::Adam opt(router->parameters(), torch::optim::AdamOptions(1e-3));
  router->train();
  const int64_t n = labels.size(0);
  for (int epoch = 0; epoch < rs.router_epochs; ++epoch) {
    const std::vector<int64_t> order = EpochOrder(n, seed, epoch);
    double total = 0;
    int batches = 0;
    for (int64_t b = 0; b < n; b += batch) {
      const int64_t e = std::min(n, b + batch);
      const torch::Tensor logit = router.ptr()->forward(Rows(features, order, b, e));
      const torch::Tensor label = Rows(labels, order, b, e);
      const torch::Tensor r = torch::sigmoid(logit);
      // The label, and the share kept at the edge held near the target coverage.
      const torch::Tensor loss =
          torch::binary_cross_entropy_with_logits(logit, label) +
          rs.coverage_weight * torch::pow((1 - r).mean() - rs.target_coverage, 2);
      opt.zero_grad();
      loss.backward();
      opt.step();
      total += loss.item<double>();
      ++batches;
    }
    if (epoch_done) epoch_done(epoch, total / std::max(1, batches));
  }
  router->eval();
}

std::vector<torch::nn::Module*> Nets::All() const {
  std::vector<torch::nn::Module*> all;
  // The holders share their modules: a const holder still trains and runs its module.
  auto add = [&](const auto& holder) {
    if (!holder.is_empty()) all.push_back(holder.ptr().get());
  };
  add(net);
  add(edge);
  add(cloud);
  add(router);
  return all;
}

void Nets::Train(bool on) const {
  for (torch::nn::Module* m : All()) m->train(on);
}

Result<Nets> BuildNets(const Recipe& r, const Splits& s) {
  Nets nets;
  if (r.shape == ModelShape::kConditional) {
    HYBRID_RETURN_IF_ERROR(CheckNet(r.net, s.size, r.name + ".net"));
    nets.net = Net(r.net, s.channels, s.size, s.classes, r.exits,
                   r.split == "int8" ? r.split_after + 1 : -1);
  } else {
    HYBRID_RETURN_IF_ERROR(CheckNet(r.edge, s.size, r.name + ".edge"));
    HYBRID_RETURN_IF_ERROR(CheckNet(r.cloud, s.size, r.name + ".cloud"));
    nets.edge = Net(r.edge, s.channels, s.size, s.classes);
    nets.cloud = Net(r.cloud, s.channels, s.size, s.classes);
    nets.router =
        Router(RouterFeatureCount(s.classes, r.router.pooled_features ? LastChannels(r.edge) : 0),
               r.router.hidden);
  }
  return nets;
}

std::map<std::string, torch::Tensor> NamedOutputs(const Trained& t, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  t.nets.Train(false);
  std::map<std::string, torch::Tensor> out;
  if (t.nets.net) {
    const NetOutputs o = t.nets.net.ptr()->forward(images);
    for (size_t i = 0; i < o.exits.size(); ++i) {
      out["exit" + std::to_string(i)] = torch::softmax(o.exits[i], 1);
    }
    out["final"] = torch::softmax(o.logits, 1);
    return out;
  }
  const NetOutputs edge = t.nets.edge.ptr()->forward(images);
  out["edge"] = torch::softmax(edge.logits, 1);
  out["edge.pooled"] = edge.pooled;
  out["cloud"] = torch::softmax(t.nets.cloud.ptr()->forward(images).logits, 1);
  out["router.features"] =
      RouterFeatures(out["edge"], t.recipe.router.pooled_features ? edge.pooled : torch::Tensor());
  out["router"] = t.nets.router.ptr()->forward(out["router.features"]);
  return out;
}

std::map<std::string, double> Accuracies(const Trained& t, const Samples& s) {
  std::map<std::string, int64_t> right;
  for (int64_t b = 0; b < s.size(); b += kEvalBatch) {
    const int64_t e = std::min(s.size(), b + kEvalBatch);
    const torch::Tensor y = s.labels.narrow(0, b, e - b);
    for (const auto& [name, probs] : NamedOutputs(t, s.images.narrow(0, b, e - b))) {
      if (probs.dim() != 2 || probs.size(1) != t.splits.classes || name == "edge.pooled" ||
          name == "router.features") {
        continue;
      }
      right[name] += (probs.argmax(1) == y).sum().item<int64_t>();
    }
  }
  std::map<std::string, double> acc;
  for (const auto& [name, n] : right)
    acc[name] = static_cast<double>(n) / std::max<int64_t>(1, s.size());
  return acc;
}

namespace {

Result<Trained> TrainUnchecked(const Recipe& recipe, const TrainOptions& o) {
  const int threads = UseThreads(o.threads);
  torch::manual_seed(recipe.seed);
  Trained t;
  t.recipe = recipe;
  if (o.epochs >= 0) t.recipe.epochs = o.epochs;
  const Recipe& r = t.recipe;
  HYBRID_ASSIGN_OR_RETURN(t.splits, LoadSplits(r, o.train_limit));
  HYBRID_ASSIGN_OR_RETURN(t.nets, BuildNets(r, t.splits));
  Log(o, fmt::format("{}: shape {}, {} training samples, {} held out for validation, {} threads",
                     r.name, r.shape == ModelShape::kConditional ? "A" : "B", t.splits.train.size(),
                     t.splits.validation.size(), threads));

  // Phase one: every network with its loss, epochs under the schedule.
  std::vector<torch::nn::Module*> trained_now;
  if (t.nets.net) {
    trained_now = {t.nets.net.get()};
  } else {
    trained_now = {t.nets.edge.get(), t.nets.cloud.get()};
  }
  auto opt = MakeOptimizer(r, Parameters(trained_now), r.lr);
  int phase = 0, done = 0;
  if (!o.resume.empty()) {
    HYBRID_ASSIGN_OR_RETURN(Resumed at, LoadCheckpoint(t, opt.get(), o.resume));
    phase = at.phase;
    done = at.step;
    Log(o, fmt::format("resumed from {} (phase {}, step {})", o.resume, phase, done));
    if (phase == 0 && done > 0 && at.optimizer_states == 0) {
      // An older trainer's format, or another optimizer: the run goes on, not as it would have.
      Log(o, fmt::format("warning: {} holds no {} state this trainer can read; continuing with "
                         "a fresh optimizer, so the result will differ from an uninterrupted run",
                         o.resume, r.optimizer));
    }
  }
  const std::vector<float> pad = PadValues(r);
  const int64_t n = t.splits.train.size();
  const int64_t batches = (n + r.batch - 1) / r.batch;
  float exit_weight_sum = 0;
  for (const ExitSpec& e : r.exits) exit_weight_sum += e.weight;
  for (int epoch = phase == 0 ? done : r.epochs; epoch < r.epochs; ++epoch) {
    const auto t0 = Clock::now();
    t.nets.Train(true);
    const std::vector<int64_t> order = EpochOrder(n, r.seed, epoch);
    std::mt19937_64 aug(r.seed * 104729 + static_cast<uint64_t>(epoch));
    double total = 0;
    int64_t right = 0;
    for (int64_t bi = 0; bi < batches; ++bi) {
      SetLr(*opt, LrAt(r, r.lr, (epoch + static_cast<double>(bi) / batches) / r.epochs));
      const int64_t b = bi * r.batch, e = std::min(n, b + r.batch);
      const torch::Tensor x =
          Augment(Rows(t.splits.train.images, order, b, e), r.crop_padding, r.flip, pad, aug);
      const torch::Tensor y = Rows(t.splits.train.labels, order, b, e);
      torch::Tensor loss, logits;
      if (t.nets.net) {
        const NetOutputs out = t.nets.net.ptr()->forward(x);
        loss = (1 - exit_weight_sum) * torch::cross_entropy_loss(out.logits, y);
        for (size_t i = 0; i < out.exits.size(); ++i) {
          loss = loss + r.exits[i].weight * torch::cross_entropy_loss(out.exits[i], y);
        }
        logits = out.logits;
      } else {
        const NetOutputs edge = t.nets.edge.ptr()->forward(x);
        const NetOutputs cloud = t.nets.cloud.ptr()->forward(x);
        loss =
            torch::cross_entropy_loss(edge.logits, y) + torch::cross_entropy_loss(cloud.logits, y);
        logits = cloud.logits;
      }
      opt->zero_grad();
      loss.backward();
      opt->step();
      total += loss.item<double>();
      right += (logits.argmax(1) == y).sum().item<int64_t>();
    }
    t.epoch_loss.push_back(total / static_cast<double>(batches));
    const auto val = Accuracies(t, t.splits.validation);
    Log(o, fmt::format("epoch {}/{}  loss {:.4f}  train {}  validation:{}  lr {:.4f}  {:.0f} s",
                       epoch + 1, r.epochs, t.epoch_loss.back(),
                       Percent(static_cast<double>(right) / n), Summary(val),
                       LrAt(r, r.lr, (epoch + 1.0) / r.epochs),
                       std::chrono::duration<double>(Clock::now() - t0).count()));
    if (!o.checkpoint.empty()) SaveCheckpoint(t, opt.get(), 0, epoch + 1, o.checkpoint);
    if (o.stop_after > 0 && epoch + 1 >= o.stop_after && epoch + 1 < r.epochs) {
      Log(o, fmt::format("stopped after epoch {} as asked; resume from the checkpoint", epoch + 1));
      return t;
    }
  }

  // Phase two (shape B): rounds of router training and re-weighted model training.
  if (t.nets.router) {
    const RouterSpec& rs = r.router;
    const double lr = r.lr * 0.02;
    auto opt2 = MakeOptimizer(r, Parameters(trained_now), lr);
    for (int round = phase == 1 ? done : 0; round < rs.rounds; ++round) {
      TrainRouter(t, o, round);
      for (int epoch = 0; epoch < rs.model_epochs; ++epoch) {
        const auto t0 = Clock::now();
        const std::vector<int64_t> order = EpochOrder(n, r.seed + 31 + round, epoch);
        std::mt19937_64 aug(r.seed * 15485863 + static_cast<uint64_t>(round * 100 + epoch));
        double total = 0;
        for (int64_t bi = 0; bi < batches; ++bi) {
          const int64_t b = bi * r.batch, e = std::min(n, b + r.batch);
          const torch::Tensor x =
              Augment(Rows(t.splits.train.images, order, b, e), r.crop_padding, r.flip, pad, aug);
          const torch::Tensor y = Rows(t.splits.train.labels, order, b, e);
          torch::Tensor send;
          {
            // The router's view of the clean batch decides the weights.
            torch::NoGradGuard no_grad;
            t.nets.Train(false);
            const NetOutputs edge = t.nets.edge.ptr()->forward(x);
            send = torch::sigmoid(t.nets.router.ptr()->forward(
                RouterFeatures(torch::softmax(edge.logits, 1),
                               rs.pooled_features ? edge.pooled : torch::Tensor())));
          }
          t.nets.edge->train();
          t.nets.cloud->train();
          const NetOutputs edge = t.nets.edge.ptr()->forward(x);
          const NetOutputs cloud = t.nets.cloud.ptr()->forward(x);
          const auto ce = [&](const torch::Tensor& logits) {
            return torch::cross_entropy_loss(logits, y, {}, torch::Reduction::None);
          };
          const torch::Tensor loss =
              ((2 - send) * ce(edge.logits)).mean() + ((1 + send) * ce(cloud.logits)).mean();
          opt2->zero_grad();
          loss.backward();
          opt2->step();
          total += loss.item<double>();
        }
        Log(o,
            fmt::format("round {} model epoch {}/{}  weighted loss {:.4f}  validation:{}  {:.0f} s",
                        round, epoch + 1, rs.model_epochs, total / static_cast<double>(batches),
                        Summary(Accuracies(t, t.splits.validation)),
                        std::chrono::duration<double>(Clock::now() - t0).count()));
      }
      if (!o.checkpoint.empty()) SaveCheckpoint(t, nullptr, 1, round + 1, o.checkpoint);
    }
    // The router last, for the models as they end.
    TrainRouter(t, o, rs.rounds);
    if (!o.checkpoint.empty()) SaveCheckpoint(t, nullptr, 1, rs.rounds, o.checkpoint);
  }
  t.nets.Train(false);
  t.validation_accuracy = Accuracies(t, t.splits.validation);
  t.test_accuracy = Accuracies(t, t.splits.test);
  Log(o, fmt::format("validation:{}", Summary(t.validation_accuracy)));
  Log(o, fmt::format("test:{}", Summary(t.test_accuracy)));
  return t;
}

}  // namespace

Result<Trained> Train(const Recipe& recipe, const TrainOptions& options) {
  try {
    return TrainUnchecked(recipe, options);
  } catch (const c10::Error& e) {
    return Error("training '{}': {}", recipe.name, e.what_without_backtrace());
  }
}

}  // namespace hybrid::train
