// The daemon <-> supervisor control protocol (DESIGN.md §1, issue 4): one request or reply per
// frame on a unix SOCK_SEQPACKET socket (the socket keeps frame boundaries; descriptors travel
// beside a frame as SCM_RIGHTS). A frame is one JSON object of at most kMaxFrame bytes. This is
// the pure part: encoding, and parsing that validates everything (type, size, count, nesting)
// before anything acts on it. A frame that fails to parse costs its sender the connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace openshell::control {

inline constexpr size_t kMaxFrame = 64 * 1024;
inline constexpr size_t kMaxFds = 3;          // stdin, stdout, stderr of an exec
inline constexpr size_t kMaxDepth = 8;        // JSON nesting; requests need 3
inline constexpr size_t kMaxArgs = 256;       // argv and env entries each
inline constexpr size_t kMaxArgBytes = 4096;  // one argv or env entry, or the cwd

enum class Op {
  kStatus,        // -> {name, supervisor_pid, agent_pid, started}
  kPolicyUpdate,  // policy_toml: a whole policy; its network_policies replace the running ones
  kShutdown,      // stop the agent (SIGTERM, then SIGKILL after the grace period) and exit
  kExec,          // run a command in the sandbox with the frame's descriptors as its stdio
                  // (stdin, stdout, stderr, or one tty); replies come as it goes:
                  // {event: started, pid}, then {event: exited, exit_code, signal}, or an error
  kOpenPty,       // -> {} with one descriptor: a pty master of the sandbox's own devpts
  kSignal,        // signal (1..64) to the commands exec'd over this connection, or with
                  // main = true to the sandbox's main process (through its init)
  kServicesUpdate,  // services: the sandbox's providers and inference routes, whole
                    // (core/services); they replace the running ones
};

struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] is the program (a path, or looked up in PATH)
  std::vector<std::string> env;   // "KEY=VALUE", added to the sandbox's environment
  std::string cwd;                // absolute; empty: the sandbox's working directory
  bool tty = false;               // the descriptor passed is a pty the command gets as its tty
};

struct Request {
  Op op = Op::kStatus;
  std::string policy_toml;  // kPolicyUpdate
  ExecRequest exec;         // kExec
  int signal = 0;           // kSignal
  bool main = false;        // kSignal: the main process, not this connection's execs
  nlohmann::json services;  // kServicesUpdate: an object, checked by services::from_json
};

struct Reply {
  bool ok = false;
  std::string error;                // when !ok: one line for a human
  std::vector<std::string> details;  // when !ok: e.g. policy diagnostics, file:line:col: ...
  nlohmann::json data = nlohmann::json::object();  // the op's result; on a failure, its details
};

[[nodiscard]] std::string_view to_string(Op op);

// Serialise a request or reply as one frame. The caller keeps within kMaxFrame (requests are
// validated the same way on both ends: encode_request fails on what parse_request refuses).
// Entries a caller adds to a sandbox's environment (--env of run and create): KEY=VALUE with a
// non-empty KEY, no NUL, at most 256 entries and 128 KiB in all. The supervisor and openshelld
// apply the same rule.
Status check_env(const std::vector<std::string>& env);

Result<std::string> encode_request(const Request& request);
[[nodiscard]] std::string encode_reply(const Reply& reply);

// Parse a received frame. Unknown ops and fields, wrong types, oversize or overlong values,
// NUL bytes in strings, and nesting deeper than kMaxDepth are errors (invalid_argument).
Result<Request> parse_request(std::string_view frame);
Result<Reply> parse_reply(std::string_view frame);

}  // namespace openshell::control
