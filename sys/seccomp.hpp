// The agent's seccomp baseline (DESIGN.md §6), compiled with libseccomp in the parent and
// installed in the pre-exec child as a ready BPF program (no allocation after clone).
#pragma once

#include <linux/filter.h>

#include <vector>

#include "core/result.hpp"

namespace openshell::sys {

struct SeccompOptions {
  bool allow_memfd_create = true;  // "policy-dependent": JITs (V8, LuaJIT) use it
};

struct SeccompProgram {
  std::vector<sock_filter> instructions;
};

Result<SeccompProgram> build_seccomp_baseline(const SeccompOptions& options);

// Pre-exec child. Requires no_new_privs. Returns 0 or an errno.
int seccomp_install_in_child(const SeccompProgram& program);

}  // namespace openshell::sys
