// serve_bench: a closed-loop load generator against the cloud server on loopback. C clients, each
// with its own connection and the edge's own transport, send one input at a time and send the
// next when the answer comes. It measures throughput and latency percentiles without dynamic
// batching (max batch 1) and with it, and the loopback round trip of a single client against the
// in-process call; it prints the ratios the goal is stated in (bench/README.md).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "engine/session.h"
#include "graph/model_file.h"
#include "graph/partition.h"
#include "net/client.h"
#include "net/log.h"
#include "net/server.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace hybrid;  // NOLINT(google-build-using-namespace): a small program

struct Load {
  double throughput = 0;  // answers per second
  double p50_ms = 0, p99_ms = 0;
  int64_t answered = 0, failed = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// One request's worth of what the cloud reads: random values of a plausible range (pixels for a
// selective-query model come back exactly as the normalization of some pixel).
std::vector<std::vector<float>> Inputs(const graph::Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> inputs;
  for (const engine::WireTensor& w : engine::CloudWire(g)) {
    std::vector<float> v(static_cast<size_t>(w.values));
    for (size_t j = 0; j < v.size(); ++j) {
      if (w.form == engine::WireTensor::Form::kPixels) {
        const float m = g.input_mean.empty() ? 0.f : g.input_mean[0];
        const float s = g.input_std.empty() ? 1.f : g.input_std[0];
        v[j] = (static_cast<float>(rng() % 256) / 255.f - m) / s;
      } else {
        v[j] = std::uniform_real_distribution<float>(-1.f, 2.f)(rng);
      }
    }
    inputs.push_back(std::move(v));
  }
  return inputs;
}

Result<Load> Drive(std::shared_ptr<const graph::Graph> g, int port, int clients, double seconds,
                   int classes) {
  std::vector<std::unique_ptr<engine::Transport>> transports;
  for (int c = 0; c < clients; ++c) {
    net::ClientOptions o;
    o.endpoints = {fmt::format("127.0.0.1:{}", port)};
    o.deadline_ms = 30000;
    HYBRID_ASSIGN_OR_RETURN(auto t, net::GrpcTransport::Create(g, o));
    transports.push_back(std::move(t));
  }
  std::vector<std::vector<double>> latencies(clients);
  std::vector<int64_t> failed(clients, 0);
  std::atomic<bool> go{false};
  const auto warmup = std::chrono::milliseconds(300);
  Clock::time_point start, end;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(clients));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      const auto inputs = Inputs(*g, static_cast<uint32_t>(c + 1));
      engine::CloudRequest request;
      request.count = 1;
      for (const auto& in : inputs) request.inputs.emplace_back(in);
      std::vector<float> out(static_cast<size_t>(classes));
      while (!go.load()) std::this_thread::yield();
      for (;;) {
        const Clock::time_point t0 = Clock::now();
        if (t0 >= end) break;
        engine::CloudReply reply;
        const Status s = transports[c]->Infer(request, out, &reply);
        const Clock::time_point t1 = Clock::now();
        if (!s.ok() || !reply.answered) {
          ++failed[c];
        } else if (t0 >= start) {  // after the warm-up
          latencies[c].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      }
    });
  }
  start = Clock::now() + warmup;
  end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  go = true;
  for (auto& t : threads) t.join();
  Load load;
  std::vector<double> all;
  for (int c = 0; c < clients; ++c) {
    all.insert(all.end(), latencies[c].begin(), latencies[c].end());
    load.failed += failed[c];
  }
  load.answered = static_cast<int64_t>(all.size());
  load.throughput = static_cast<double>(all.size()) / seconds;
  load.p50_ms = Percentile(all, 0.5);
  load.p99_ms = Percentile(all, 0.99);
  return load;
}

Result<Load> Serve(const std::string& model, std::shared_ptr<const graph::Graph> g, int max_batch,
                   int64_t delay_us, int threads, int clients, double seconds, int classes) {
  net::ServerOptions o;
  o.models = {model};
  o.host = "127.0.0.1";
  o.grpc_port = 0;
  o.http_port = -1;
  o.batching.max_batch = max_batch;
  o.batching.max_queue_delay_us = delay_us;
  o.batching.threads = threads;
  o.batching.max_queue = 1024;
  HYBRID_ASSIGN_OR_RETURN(auto server, net::CloudServer::Start(o));
  auto load = Drive(std::move(g), server->grpc_port(), clients, seconds, classes);
  server->Shutdown();
  return load;
}

Result<Load> InProcess(const std::shared_ptr<const graph::Graph>& g, int threads, double seconds,
                       int classes) {
  HYBRID_ASSIGN_OR_RETURN(auto t, engine::MakeInProcessTransport(g, "onednn", 1, threads));
  const auto inputs = Inputs(*g, 1);
  engine::CloudRequest request;
  request.count = 1;
  for (const auto& in : inputs) request.inputs.emplace_back(in);
  std::vector<float> out(static_cast<size_t>(classes));
  std::vector<double> lat;
  const Clock::time_point warm = Clock::now() + std::chrono::milliseconds(300);
  const Clock::time_point end =
      warm + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (Clock::time_point t0 = Clock::now(); t0 < end; t0 = Clock::now()) {
    engine::CloudReply reply;
    HYBRID_RETURN_IF_ERROR(t->Infer(request, out, &reply));
    if (t0 >= warm) {
      lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  Load load;
  load.answered = static_cast<int64_t>(lat.size());
  load.throughput = static_cast<double>(lat.size()) / seconds;
  load.p50_ms = Percentile(lat, 0.5);
  load.p99_ms = Percentile(lat, 0.99);
  return load;
}

int Main(int argc, char** argv) {
  CLI::App app{"Closed-loop load on the cloud server over loopback (bench/README.md)."};
  std::string model = "models/fmnist_b_binary.hybrid";
  int clients = 32, max_batch = 32, threads = 0, repeats = 3;
  int64_t delay_us = 2000;
  double seconds = 3;
  app.add_option("--model", model, "Model file whose cloud partition is served")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients")->capture_default_str();
  app.add_option("--max-batch", max_batch, "The batched server's max batch")->capture_default_str();
  app.add_option("--max-queue-delay-us", delay_us, "The batched server's max queue delay")
      ->capture_default_str();
  app.add_option("--threads", threads, "Threads of the server's worker (0: every core)")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "Measured seconds per configuration")->capture_default_str();
  app.add_option("--repeats", repeats, "Runs of each configuration, interleaved; medians shown")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  hybrid::net::SetLogLevel("warn");

  auto loaded = graph::LoadModelFile(model);
  if (!loaded.ok()) {
    std::cerr << "error: " << loaded.message() << "\n";
    return 1;
  }
  auto g = std::make_shared<const graph::Graph>(std::move(loaded).value());
  int classes = 0;
  for (const graph::NamedOutput& o : g->outputs) {
    if (o.kind == graph::OutputKind::kFinal)
      classes = static_cast<int>(g->tensors[o.tensor].shape.back());
  }
  std::cout << fmt::format(
      "serve_bench: {} ({}), {} clients, {:.1f} s per run, medians of {} interleaved runs\n", model,
      g->name, clients, seconds, repeats);

  struct Config {
    std::string name;
    int clients, max_batch;
    int64_t delay_us;
    bool in_process = false;
  };
  const std::vector<Config> configs = {
      {"in-process call", 1, 1, 0, true},
      {"loopback, 1 client, unbatched", 1, 1, 0},
      {fmt::format("{} clients, unbatched (max batch 1)", clients), clients, 1, 0},
      {fmt::format("{} clients, batched (max batch {}, delay {} us)", clients, max_batch, delay_us),
       clients, max_batch, delay_us},
  };
  std::vector<std::vector<Load>> runs(configs.size());
  for (int r = 0; r < repeats; ++r) {
    for (size_t i = 0; i < configs.size(); ++i) {
      const Config& c = configs[i];
      auto load = c.in_process ? InProcess(g, threads, seconds, classes)
                               : Serve(model, g, c.max_batch, c.delay_us, threads, c.clients,
                                       seconds, classes);
      if (!load.ok()) {
        std::cerr << "error: " << load.message() << "\n";
        return 1;
      }
      runs[i].push_back(*load);
    }
  }
  const auto median = [](std::vector<double> v) { return Percentile(std::move(v), 0.5); };
  std::vector<Load> med(configs.size());
  std::cout << fmt::format("{:<52} {:>12} {:>9} {:>9} {:>8}\n", "configuration", "answers/s",
                           "p50 ms", "p99 ms", "failed");
  for (size_t i = 0; i < configs.size(); ++i) {
    std::vector<double> tp, p50, p99;
    int64_t failed = 0;
    for (const Load& l : runs[i]) {
      tp.push_back(l.throughput);
      p50.push_back(l.p50_ms);
      p99.push_back(l.p99_ms);
      failed += l.failed;
    }
    med[i] = Load{median(tp), median(p50), median(p99), 0, failed};
    std::cout << fmt::format("{:<52} {:>12.1f} {:>9.3f} {:>9.3f} {:>8}\n", configs[i].name,
                             med[i].throughput, med[i].p50_ms, med[i].p99_ms, failed);
  }
  const double single = med[1].p50_ms;
  std::cout << fmt::format(
      "loopback round trip over the in-process call: {:.3f} ms ({:.2f}x)\n"
      "batched / unbatched throughput with {} clients: {:.2f}x (goal >= 2)\n"
      "batched p99 / single-request latency: {:.2f}x (goal < 5)\n",
      single - med[0].p50_ms, single / std::max(med[0].p50_ms, 1e-9), clients,
      med[3].throughput / std::max(med[2].throughput, 1e-9),
      med[3].p99_ms / std::max(single, 1e-9));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
