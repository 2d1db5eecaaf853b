// What the kernel offers sandboxes, as `openshellctl status` shows it (issue 4 item 1): the
// Landlock ABI, the cgroup hierarchy, nf_tables, user namespaces. Read once at start.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace openshell::daemon {

// (feature, what was found), in a fixed order: landlock, cgroup, nftables, userns.
std::vector<std::pair<std::string, std::string>> kernel_features();

}  // namespace openshell::daemon
