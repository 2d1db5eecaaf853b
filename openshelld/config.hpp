// openshelld.toml (DESIGN.md §7 "Files"): where the daemon keeps things. Every path is
// relocatable so tests run a daemon in a temporary directory.
#pragma once

#include <string>

#include "core/result.hpp"

namespace openshell::daemon {

struct Config {
  std::string state_dir = "/var/lib/openshell";
  std::string policy_dir = "/etc/openshell/policies";
  std::string runtime_dir = "/run/openshell";
  std::string log_dir = "/var/log/openshell";
  std::string supervisor = "/usr/libexec/openshell/openshell-supervisor";
  std::string default_policy = "default";
  unsigned max_sandboxes = 64;
  // A removed sandbox's log directory moves to log_dir/removed/; this many are kept there, the
  // oldest deleted first.
  unsigned removed_logs_kept = 100;
  // How supervisors are started: "systemd" (a transient unit per sandbox in openshell.slice),
  // "direct" (a detached process), or "auto" (systemd when PID 1 is systemd).
  std::string driver = "auto";
};

// Reads the file; unknown keys and wrong types are errors with file:line:col. A missing file
// at the default path gives the defaults.
Result<Config> load_config(const std::string& path, bool must_exist);

}  // namespace openshell::daemon
