// Named policies: the *.toml files of the policy directory (DESIGN.md §7 "Files"). Loaded and
// validated as a set: a reload applies nothing unless every file is valid (validate, then swap).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/policy.hpp"

namespace openshell::daemon {

struct PolicyFile {
  std::string name;  // file name without .toml
  std::string path;
  std::string text;
  std::shared_ptr<const policy::Policy> policy;  // the text, parsed and validated
};

struct PolicySet {
  std::map<std::string, PolicyFile> files;
  std::vector<std::string> diagnostics;  // "file:line:col: key: reason", every problem found
  [[nodiscard]] bool ok() const { return diagnostics.empty(); }
};

inline constexpr size_t kMaxPolicies = 1024;

// Reads and validates every <dir>/*.toml (a name that is not a valid policy name, an unreadable
// or oversize file, and any policy diagnostic all land in `diagnostics`).
PolicySet load_policies(const std::string& dir);

}  // namespace openshell::daemon
