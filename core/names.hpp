// Names a caller chooses and that end up in paths, unit names and cgroup names: sandboxes and
// named policies. One rule for every binary, so a name the CLI accepts is one the daemon and
// the supervisor accept too.
#pragma once

#include <string_view>

namespace openshell {

// 1..63 of [a-z0-9-], not starting with '-': no '/', no '..', no whitespace, fits a hostname
// label and a systemd unit name.
[[nodiscard]] bool valid_sandbox_name(std::string_view name);
// The same rule for a named policy (its file is <policy_dir>/<name>.toml).
[[nodiscard]] bool valid_policy_name(std::string_view name);

}  // namespace openshell
