// libFuzzer target: policy TOML text -> parse_policy_string. The parser must never crash, hang
// or throw, whatever the bytes; and its two outcomes must be consistent with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/policy.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const openshell::policy::ParseResult r =
      openshell::policy::parse_policy_string(text, "fuzz.toml");
  // A policy object exists exactly when no problem was found.
  if ((r.policy != nullptr) == !r.diagnostics.empty()) std::abort();
  for (const auto& d : r.diagnostics) {
    if (d.reason.empty() || d.to_string().find('\n') != std::string::npos) std::abort();
  }
  return 0;
}
