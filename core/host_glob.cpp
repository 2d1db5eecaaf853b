#include "core/host_glob.hpp"

#include <algorithm>

namespace openshell::policy {
namespace {

// Fixed labels a wildcard must have after it; one would let `*.com` cover a whole TLD.
constexpr size_t kMinFixedLabelsAfterWildcard = 2;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

std::string lower_strip_dot(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// '*' matches any run within one label. The classic iterative algorithm: remember the last star
// and retry from one character further on mismatch; linear in practice, never exponential.
bool label_glob_match(std::string_view pattern, std::string_view label) {
  size_t p = 0;
  size_t l = 0;
  size_t star = std::string_view::npos;
  size_t resume = 0;
  while (l < label.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = l;
    } else if (p < pattern.size() && pattern[p] == label[l]) {
      ++p;
      ++l;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      l = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string describe_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0xf];
}

}  // namespace

std::string normalize_host(std::string_view host) {
  std::string out = lower_strip_dot(host);
  if (out.empty() || out.size() > kMaxHostLength) return {};
  if (!std::all_of(out.begin(), out.end(), is_host_char)) return {};
  for (std::string_view label : split_labels(out)) {
    if (label.empty() || label.size() > kMaxHostLabelLength) return {};
  }
  return out;
}

Result<HostPattern> HostPattern::parse(std::string_view pattern) {
  HostPattern hp;
  hp.text_ = lower_strip_dot(pattern);
  const std::string& text = hp.text_;
  if (text.empty()) return Error::invalid("host is empty");
  if (text.size() > kMaxHostLength) {
    return Error::invalid("host is longer than " + std::to_string(kMaxHostLength) + " characters");
  }
  for (char c : text) {
    if (!is_host_char(c) && c != '*') {
      return Error::invalid("host contains " + describe_char(c) +
                            ", which is not allowed (use a-z, 0-9, '-', '_', '.', '*')");
    }
  }

  const std::vector<std::string_view> labels = split_labels(text);
  size_t last_wildcard = std::string_view::npos;
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string_view label = labels[i];
    if (label.empty()) return Error::invalid("host has an empty label");
    if (label.size() > kMaxHostLabelLength) {
      return Error::invalid("host label '" + std::string(label) + "' is longer than " +
                            std::to_string(kMaxHostLabelLength) + " characters");
    }
    if (label.find('*') == std::string_view::npos) continue;
    last_wildcard = i;
    if (label == "**") {
      if (i != 0) return Error::invalid("'**' is only allowed as the whole first label");
      hp.multi_label_first_ = true;
    } else if (label.find("**") != std::string_view::npos) {
      return Error::invalid("'**' must be a whole label (and only the first one)");
    } else if (label != "*" && i != 0) {
      return Error::invalid("a partial wildcard label ('" + std::string(label) +
                            "') is only allowed as the first label; a middle label may only be "
                            "a whole '*'");
    }
  }
  if (last_wildcard != std::string_view::npos) {
    hp.exact_ = false;
    if (labels.size() - 1 - last_wildcard < kMinFixedLabelsAfterWildcard) {
      return Error::invalid("a wildcard needs at least two fixed labels after it ('" + text +
                            "' would cover a whole top-level domain)");
    }
  }
  hp.labels_.assign(labels.begin(), labels.end());
  return hp;
}

bool HostPattern::matches(std::string_view host) const {
  const std::string candidate = normalize_host(host);
  if (candidate.empty()) return false;
  if (exact_) return candidate == text_;

  const std::vector<std::string_view> got = split_labels(candidate);
  size_t first = 0;   // index into labels_ of the first label compared one to one
  size_t offset = 0;  // got[offset + i - first] is compared with labels_[i]
  if (multi_label_first_) {
    // "**" takes one or more leading labels; everything after it is matched from the right.
    if (got.size() < labels_.size()) return false;
    first = 1;
    offset = got.size() - labels_.size() + 1;
  } else if (got.size() != labels_.size()) {
    return false;
  }
  for (size_t i = first; i < labels_.size(); ++i) {
    if (!label_glob_match(labels_[i], got[offset + i - first])) return false;
  }
  return true;
}

std::vector<std::string_view> split_labels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

}  // namespace openshell::policy
