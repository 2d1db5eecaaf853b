// hosts(5) lookups: the names an operator put in the host's /etc/hosts (an internal registry, a
// model server). The proxy and the policy DNS ask for absolute names, "name." (so the host's
// resolv.conf search list never rewrites a name the sandbox asked for), and glibc's files backend
// matches no name with a trailing dot: without this, no /etc/hosts name ever resolved in a sandbox.
#pragma once

#include <string_view>
#include <vector>

#include "core/cidr.hpp"

namespace openshell {

// The addresses `text` (a hosts file) gives `name`: every line whose canonical name or an alias
// equals it, case-insensitively and exactly (no search list, no trailing dot), in file order,
// without repeats. Lines whose address does not parse (a zone id, garbage) are skipped.
[[nodiscard]] std::vector<IpAddress> hosts_file_lookup(std::string_view text, std::string_view name);

}  // namespace openshell
