// Names a caller chooses and that end up in paths, unit names and cgroup names: sandboxes and
// named policies. One rule for every binary, so a name the CLI accepts is one the daemon and
// the supervisor accept too.
#pragma once

#include <cstdint>
#include <string_view>

namespace openshell {

// 1..63 of [a-z0-9-], not starting with '-': no '/', no '..', no whitespace, fits a hostname
// label and a systemd unit name.
[[nodiscard]] bool valid_sandbox_name(std::string_view name);
// The same rule for a named policy (its file is <policy_dir>/<name>.toml).
[[nodiscard]] bool valid_policy_name(std::string_view name);

// The uid and gid outside that a sandbox made by root maps its agent to (DESIGN.md §2): one of
// its own, in 2147000000..2147999999, outside any range a distribution hands out, so no two
// sandboxes (nor any host account, nor `nobody`) share it. The supervisor maps it; openshelld
// gives root's workspaces to it.
[[nodiscard]] uint32_t sandbox_outside_id(std::string_view sandbox_name);

}  // namespace openshell
