// OCSF event model and JSON encoding (DESIGN.md §8). Every security decision and lifecycle step
// becomes one of these; the schema version is pinned here and nowhere else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace openshell::ocsf {

inline constexpr std::string_view kSchemaVersion = "1.7.0";
inline constexpr std::string_view kProductName = "openshell";

enum class ClassUid : int {
  kProcessActivity = 1007,
  kDetectionFinding = 2004,
  kNetworkActivity = 4001,
  kHttpActivity = 4002,
  kDnsActivity = 4003,
  kDeviceConfigStateChange = 5019,
  kApiActivity = 6003,
};

enum class Severity : int {
  kUnknown = 0,
  kInformational = 1,
  kLow = 2,
  kMedium = 3,
  kHigh = 4,
  kCritical = 5,
  kFatal = 6
};
enum class StatusId : int { kUnknown = 0, kSuccess = 1, kFailure = 2 };

// Process Activity activity ids (OCSF 1007).
inline constexpr int kActivityLaunch = 1;
inline constexpr int kActivityTerminate = 2;
// Device Config State Change has no activity enum of its own beyond Unknown/Other in the
// version we pin; we use Other (99) and name the activity ("Loaded", "Skipped", "Failed").
inline constexpr int kActivityOther = 99;

struct Event {
  ClassUid class_uid = ClassUid::kProcessActivity;
  int activity_id = 0;
  std::string activity_name;
  Severity severity = Severity::kInformational;
  StatusId status = StatusId::kSuccess;
  std::string status_detail;  // deny or failure reason; empty when none
  std::string message;
  int64_t time_ms = 0;  // epoch milliseconds; 0 means "stamp when encoding"
  std::string sandbox;  // sandbox name, carried in unmapped.sandbox and the journal field
  nlohmann::json fields = nlohmann::json::object();  // class-specific attributes

  // Full OCSF object with the common attributes (category, type_uid, metadata, ...).
  [[nodiscard]] nlohmann::json to_json() const;
  // One line of JSON without a trailing newline.
  [[nodiscard]] std::string to_json_line() const;
};

[[nodiscard]] int64_t now_ms();
[[nodiscard]] std::string_view class_name(ClassUid uid);
[[nodiscard]] int category_uid(ClassUid uid);

// Builders for the events this release emits. They fill the class-specific fields.
struct ProcessInfo {
  int64_t pid = 0;          // host pid
  int64_t sandbox_pid = 0;  // pid inside the sandbox's pid namespace (0 = unknown)
  std::string exe;          // path as the agent named it; argv is never recorded
  int64_t uid = -1;         // uid inside the sandbox
  // "" for the sandbox's main process (the agent); "exec" or "tty" for a command run in it later
  // (openshellctl exec, connect): process.xattributes.session.
  std::string session;
};

Event process_launch(std::string_view sandbox, const ProcessInfo& process);
// exit_code: the agent's exit code, or 128+N for signal N. signal: 0 unless killed by one.
Event process_exit(std::string_view sandbox, const ProcessInfo& process, int exit_code, int signal,
                   std::string_view detail);
// One proxy decision on a connection (Network Activity 4001, activity Open).
struct ConnectionInfo {
  std::string host;  // the name decided on (or the address literal)
  uint16_t port = 0;
  std::string address;      // the address dialled or that was the original destination
  std::string src_address;  // the sandbox side
  uint16_t src_port = 0;
  int64_t pid = -1;    // calling process (host pid), -1 if unknown
  std::string binary;  // its exe
  int64_t uid = -1;    // the socket's owner, as the host knows it (actor.user.uid); -1 unknown
  bool allowed = false;
  bool audit = false;  // allowed only because enforcement = "audit"
  std::string rule;    // network_policies key that decided
  std::string reason;  // stable code, e.g. "binary_not_allowed"
  std::string detail;  // human text for agents
  std::string mode;      // "connect", "forward", "transparent" or "raw" (refused by the firewall)
  std::string protocol;  // "tcp", "udp", "icmp", ... (connection_info.protocol_name)
};
Event network_activity(std::string_view sandbox, const ConnectionInfo& c);
// A DNS query the policy refused (DNS Activity 4003).
Event dns_denied(std::string_view sandbox, std::string_view name, uint16_t qtype);
// A bypass attempt (Detection Finding 2004): a connection that ignored the proxy and was refused.
Event bypass_finding(std::string_view sandbox, const ConnectionInfo& c);

// A credential placeholder sent where its provider is not bound (Detection Finding 2004): the
// request was refused and nothing of it went upstream. `keys` names the placeholders (never a
// value); method and path as HttpInfo's.
Event credential_finding(std::string_view sandbox, const ConnectionInfo& c,
                         const std::vector<std::string>& keys, std::string_view method,
                         std::string_view path);

// One call to https://inference.local (API Activity 6003; issue 16 item 9).
struct InferenceInfo {
  std::string call;             // "chat_completions", "messages", "models", ...
  std::string route;            // the route that answered ("" when none could)
  std::string locality;         // its backend's: "local", "remote"
  std::string requested_model;  // what the agent asked for ("" when nothing)
  std::string sent_model;       // what the backend got
  int status = 0;               // what the agent got
  std::string error;            // the refusal's class when the router answered itself
  std::string reason;
  std::vector<std::string> failed_over;  // routes tried before `route`, each "name: why"
  int64_t latency_ms = 0;                // to the response's end
  int64_t first_byte_ms = -1;            // to its first body byte; -1 when none came
  std::optional<uint64_t> input_tokens;  // as the backend reported in `usage`
  std::optional<uint64_t> output_tokens;
  ConnectionInfo connection;  // the caller's connection to inference.local
};
Event inference_activity(std::string_view sandbox, const InferenceInfo& i);

// One inspected HTTP request (HTTP Activity 4002; issue 15 item 8): who sent it where (the
// connection's fields), its method, its canonical path without the query, the status answered
// (0 when none yet), the L7 rule that decided and the enforcement. Nothing of headers, query or
// body: they carry credentials and data.
struct HttpInfo {
  ConnectionInfo connection;  // allowed/audit/rule/reason/detail: the request's decision
  std::string method;
  std::string path;  // canonical; anything from '?' on is dropped here too
  int status = 0;
  std::string l7_rule;  // "rules[2]", "deny_rules[0]", "access read-only", ""
  bool enforced = true;  // false: the endpoint's enforcement is audit
};
Event http_activity(std::string_view sandbox, const HttpInfo& h);

// A configuration fact: policy loaded or rejected, a Landlock path skipped, a setup failure.
Event config_change(std::string_view sandbox, std::string_view activity, Severity severity,
                    StatusId status, std::string_view message, nlohmann::json fields = {});

}  // namespace openshell::ocsf
