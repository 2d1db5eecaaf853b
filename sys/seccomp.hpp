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

// A filter that stops every connect(2) for the supervisor to look at (seccomp user
// notification; the supervisor lets each one continue): it records which process connected
// which socket, so the proxy knows its caller without searching /proc (proxy/connect_tracker).
Result<SeccompProgram> build_connect_notify();

// Pre-exec child, before the baseline (which denies seccomp(2) itself). Requires
// no_new_privs. On success *listener is the notification fd to hand to the supervisor; returns
// 0 or an errno (EINVAL, EBUSY: a kernel without user notification, or a listener already set).
int seccomp_install_listener_in_child(const SeccompProgram& program, int* listener);

}  // namespace openshell::sys
