// Structured logs: one JSON object per line on standard error, {"ts", "level", "event", ...}.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace hybrid::net {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Sets the lowest level written ("debug", "info", "warn", "error"); false for another name.
bool SetLogLevel(std::string_view name);
bool LogEnabled(LogLevel level);

// Writes one line: the event's name and its fields (an object).
void Log(LogLevel level, std::string_view event, nlohmann::json fields = nlohmann::json::object());

}  // namespace hybrid::net
