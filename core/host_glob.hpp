// Endpoint host patterns (DESIGN.md §3, OpenShell's `host` field): an exact DNS name, compared
// case-insensitively, or a glob whose wildcards are confined to whole labels:
//   *.example.com        `*` as a whole label: exactly one label
//   *-x.googleapis.com   `*` inside the first label: any run of label characters
//   **.example.com       `**` (whole first label only): one or more labels
//   a.*.example.com      a whole middle label may be `*`
// A wildcard needs at least two fixed labels after it, so a pattern can never cover a whole
// top-level domain (`*.com`, `**.co`, `a.*.com`).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace openshell::policy {

inline constexpr size_t kMaxHostLength = 253;
inline constexpr size_t kMaxHostLabelLength = 63;

class HostPattern {
 public:
  // Lower-cases and strips one trailing dot before validating. IPv4 literals pass (they are
  // label-shaped); IPv6 literals do not (':' is not a host character): use allowed_ips.
  [[nodiscard]] static Result<HostPattern> parse(std::string_view pattern);

  // The candidate is normalised the same way first. A candidate that is empty, has an empty
  // label, or holds any character outside [a-z0-9-_.] (after lower-casing) matches nothing, so
  // "a.example.test/", "a\0.example.test" or "*.example.test" can never slip past a wildcard.
  [[nodiscard]] bool matches(std::string_view host) const;

  [[nodiscard]] bool is_exact() const { return exact_; }
  // The normalised pattern text, e.g. "**.example.com".
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> labels_;  // text_ split on '.'
  bool exact_ = true;
  bool multi_label_first_ = false;  // first label is "**"
};

// Lower-cases and strips one trailing dot; empty on a malformed host (see matches()).
[[nodiscard]] std::string normalize_host(std::string_view host);

// "a.b.c" -> {"a", "b", "c"}; empty labels are kept ("a..b" -> {"a", "", "b"}).
std::vector<std::string_view> split_labels(std::string_view s);

}  // namespace openshell::policy
