// Result<T>: the control-path error regime (HOUSE_STYLE "Errors", regime 1).
// A fallible function returns either a value or an Error {error_code, context}; callers add
// context on the way up, so the final message reads outermost-first:
//   "starting sandbox: mounting /usr: No such file or directory".
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace openshell {

struct Error {
  std::error_code code;
  std::string context;

  // Captures errno at the call site: call it right after the failing syscall.
  static Error from_errno(std::string ctx, int err = errno) {
    return Error{std::error_code(err, std::generic_category()), std::move(ctx)};
  }
  static Error invalid(std::string ctx) {
    return Error{std::make_error_code(std::errc::invalid_argument), std::move(ctx)};
  }

  // Adds an outer layer of context.
  [[nodiscard]] Error wrap(const std::string& outer) const& {
    return Error{code, outer + ": " + context};
  }

  // "context: Reason" for errno errors; just the context for invalid(), whose context already
  // says what was wrong ("...: Invalid argument" added nothing).
  [[nodiscard]] std::string message() const {
    if (!code) return context;
    if (context.empty()) return code.message();
    if (code == std::errc::invalid_argument) return context;
    return context + ": " + code.message();
  }
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT

  [[nodiscard]] bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const Error& error() const { return err_; }

 private:
  Error err_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace openshell
