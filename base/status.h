// Errors as values: Status for operations without a result, Result<T> for those with one.
// Every error carries a human-readable message that says what is wrong and where.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace hybrid {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message), true); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Returns this error with "context: " put in front of its message; an ok status stays ok.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Error(context + ": " + message_);
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// Formats an error message with fmt syntax.
template <typename... Args>
Status Error(fmt::format_string<Args...> format, Args&&... args) {
  return Status::Error(fmt::format(format, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = Status::Error("internal error: Result built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  const std::string& message() const { return status_.message(); }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace hybrid

#define HYBRID_CONCAT_INNER(a, b) a##b
#define HYBRID_CONCAT(a, b) HYBRID_CONCAT_INNER(a, b)

// Returns the error of a Status-valued expression from the enclosing function.
#define HYBRID_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::hybrid::Status hybrid_status_ = (expr);        \
    if (!hybrid_status_.ok()) return hybrid_status_; \
  } while (0)

// Declares or assigns `lhs` from a Result-valued expression, returning its error if it failed.
#define HYBRID_ASSIGN_OR_RETURN(lhs, expr) \
  HYBRID_ASSIGN_OR_RETURN_IMPL(HYBRID_CONCAT(hybrid_result_, __LINE__), lhs, expr)
// `lhs` may be a declaration and `tmp` a fresh name, so neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define HYBRID_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
