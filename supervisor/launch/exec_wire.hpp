// The supervisor <-> sandbox-init messages that run a command inside a running sandbox (an
// "exec"). Init is already everything the command must be (uid 1000 in the sandbox's
// namespaces and cgroup, no capabilities, no_new_privs, Landlock, seccomp), so it forks the
// command itself. Init lives in the pre-exec regime (no allocation: it was forked from a
// threaded process), so the request is a flat record it can read in place: a header, then the
// cwd, the argv and the env entries, each NUL-terminated. Descriptors (stdin, stdout, stderr,
// or one tty) travel beside it as SCM_RIGHTS on a SOCK_SEQPACKET socketpair.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace openshell::supervisor {

inline constexpr uint32_t kExecMagic = 0x6f736578;  // "osex"
inline constexpr size_t kExecRequestMax = 96 * 1024;
inline constexpr size_t kExecMaxArgs = 256;  // argv, and env, each
inline constexpr uint32_t kExecFlagTty = 1;  // the single descriptor is a tty: make it ours

struct ExecHeader {
  uint32_t magic = kExecMagic;
  uint32_t id = 0;  // chosen by the supervisor; echoed in every event about this exec
  uint32_t argc = 0;
  uint32_t envc = 0;
  uint32_t flags = 0;
};

// Supervisor -> init, instead of a request: send `signal` to exec `id`'s process group (the
// command and what it started; it leads its own session). For a caller that went away. An id
// that is not running (it ended meanwhile) is ignored.
inline constexpr uint32_t kExecSignalMagic = 0x6f736b6c;  // "oskl"

struct ExecSignal {
  uint32_t magic = kExecSignalMagic;
  uint32_t id = 0;
  int32_t signal = 0;
};

enum class ExecEventKind : uint32_t {
  kStarted = 1,  // value: unused; pid: the command's pid in the sandbox
  kFailed = 2,   // value: errno (the fork, or the command could not be executed)
  kExited = 3,   // value: the raw wait status
  kNoWorkdir = 4,  // value: errno; the command's working directory could not be entered
};

struct ExecEvent {
  ExecEventKind kind = ExecEventKind::kStarted;
  uint32_t id = 0;
  int32_t pid = -1;
  int32_t value = 0;
};

// Parent side: the flat record, or empty when it would not fit (or a string holds a NUL).
std::string encode_exec_request(uint32_t id, const std::vector<std::string>& argv,
                                const std::vector<std::string>& env, const std::string& cwd,
                                bool tty);

// Child side, no allocation: points argv/envp (NULL-terminated arrays of at least
// kExecMaxArgs + 1 entries) and *cwd into `buf`, which must stay alive. False on anything
// malformed.
bool parse_exec_request_in_child(char* buf, size_t size, ExecHeader* header, char** argv,
                                 char** envp, const char** cwd);

}  // namespace openshell::supervisor
