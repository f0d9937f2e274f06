#include "net/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>

namespace hybrid::net {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

spdlog::logger& Logger() {
  // spdlog formats nothing itself: every line is already a JSON object; the sink is thread-safe.
  static auto* logger = [] {
    auto* l = new spdlog::logger("hybrid", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

}  // namespace

bool SetLogLevel(std::string_view name) {
  const LogLevel levels[] = {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError};
  const char* names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; ++i) {
    if (name == names[i]) {
      min_level = static_cast<int>(levels[i]);
      return true;
    }
  }
  return false;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= min_level.load(); }

void Log(LogLevel level, std::string_view event, nlohmann::json fields) {
  if (!LogEnabled(level)) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  nlohmann::ordered_json line;
  line["ts"] = Timestamp();
  line["level"] = names[static_cast<int>(level)];
  line["event"] = event;
  for (auto& [k, v] : fields.items()) line[k] = v;
  Logger().info(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace hybrid::net
