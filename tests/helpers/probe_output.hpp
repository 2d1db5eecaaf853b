// Shared output contract of the probe programs in tests/helpers.
//
// Tests parse these lines, so every probe prints the same shapes:
//   "<what> ok"            the attempt succeeded
//   "<what> errno=ENAME"   the attempt failed; ENAME is symbolic (EPERM, EACCES, ...)
// and exits 0 once all attempts ran, or 2 with a one-line usage message on bad arguments.
// Header-only and dependency-free so each probe stays one source file linked statically.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace openshell::probe {

inline constexpr int kExitUsage = 2;

// Symbolic errno name; a number only for errnos glibc does not know (newer kernels).
inline const char* errno_name(int err) {
  static thread_local char fallback[24];
  if (const char* name = strerrorname_np(err); name != nullptr) return name;
  std::snprintf(fallback, sizeof fallback, "%d", err);
  return fallback;
}

// Signal abbreviation with the SIG prefix ("SIGSYS"), as tests expect for seccomp kills.
inline const char* signal_name(int sig) {
  static thread_local char buf[24];
  const char* abbrev = sigabbrev_np(sig);
  if (abbrev != nullptr) {
    std::snprintf(buf, sizeof buf, "SIG%s", abbrev);
  } else {
    std::snprintf(buf, sizeof buf, "%d", sig);
  }
  return buf;
}

// One result line. Flushed at once so a probe killed mid-run (OOM, seccomp) still leaves
// every line it printed before dying.
inline void print_result(const char* what, int err) {
  if (err == 0) {
    std::printf("%s ok\n", what);
  } else {
    std::printf("%s errno=%s\n", what, errno_name(err));
  }
  std::fflush(stdout);
}

[[noreturn]] inline void usage_exit(const char* usage) {
  std::fprintf(stderr, "usage: %s\n", usage);
  std::exit(kExitUsage);
}

// Strict decimal parse: the whole string must be digits and the value within [min, max].
inline bool parse_long(const char* text, long min, long max, long* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min || value > max) return false;
  *out = value;
  return true;
}

// A numeric IPv4 or IPv6 address and a port as a socket address; false for anything else
// (probes take no names: a sandbox may have no resolver).
inline bool numeric_address(const char* host, long port, sockaddr_storage* addr,
                            socklen_t* len) {
  *addr = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(addr);
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v6;
    return true;
  }
  return false;
}

}  // namespace openshell::probe
