// openshelld.toml (DESIGN.md §7 "Files"): where the daemon keeps things. Every path is
// relocatable so tests run a daemon in a temporary directory.
#pragma once

#include <string>
#include <vector>

#include "core/policy.hpp"
#include "core/providers.hpp"
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
  // At most this many sandboxes per non-root caller (root: max_sandboxes only).
  unsigned max_sandboxes_per_user = 16;
  // Every sandbox's limits where its policy's [resources] sets none ([sandbox_defaults]).
  policy::Resources sandbox_defaults = policy::builtin_resource_defaults();
  // The most a non-root caller's sandbox may have, after the defaults (max_memory, max_cpu,
  // max_pids, max_tmp_size, max_shm_size); unset: no cap.
  policy::Resources user_caps;
  // A removed sandbox's log directory moves to log_dir/removed/; this many are kept there, the
  // oldest deleted first.
  unsigned removed_logs_kept = 100;
  // How supervisors are started: "systemd" (a transient unit per sandbox in openshell.slice),
  // "direct" (a detached process), or "auto" (systemd when PID 1 is systemd).
  std::string driver = "auto";
  // Extra roots trusted for upstream TLS besides the host's (corporate or internal CAs): PEM
  // files, each readable when the config is loaded; every supervisor gets --upstream-ca.
  std::vector<std::string> upstream_ca;
  // The operator's egress proxy, "http://HOST:PORT" (checked), or "" for none: every
  // supervisor gets --upstream-proxy and dials allowed destinations through it.
  std::string upstream_proxy;
  // The inference routes (openshellctl inference route set) a sandbox uses when neither it
  // (create --inference) nor its policy ([inference] routes) names any; a non-root owner's
  // sandbox uses these alone.
  std::vector<std::string> default_routes;
  // Providers the operator defines here, their values from systemd credentials
  // ([providers.NAME] type = "openai", credentials = { OPENAI_API_KEY = "openai-key" }: the
  // file openai-key of $CREDENTIALS_DIRECTORY, LoadCredential= in the unit). Read at load, held
  // in memory only; `provider update` and `delete` leave them be.
  std::vector<providers::Provider> providers;
};

// Reads the file; unknown keys and wrong types are errors with file:line:col, every one of them
// in one error (a line each). A missing file at the default path gives the defaults.
Result<Config> load_config(const std::string& path, bool must_exist);

}  // namespace openshell::daemon
