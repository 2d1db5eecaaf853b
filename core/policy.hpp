// The policy language (DESIGN.md §3): plain value types, parsed from TOML and validated.
// A policy is a value: parse -> validate -> immutable object. Nothing here touches the system.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/cidr.hpp"
#include "core/inference.hpp"

namespace openshell::policy {

// Where a value came from, for diagnostics ("file:line:col").
struct SourcePos {
  uint32_t line = 0;
  uint32_t column = 0;
};

struct Diagnostic {
  std::string file;
  SourcePos pos;
  std::string key;     // dotted key path, e.g. "network_policies.github.endpoints[0].host"
  std::string reason;  // human sentence, lower case, no trailing period

  // "file:line:col: key: reason"
  [[nodiscard]] std::string to_string() const;
};

// Limits on what a policy file may make us allocate.
inline constexpr size_t kMaxPolicyFileBytes = 1 << 20;
inline constexpr size_t kMaxPathLength = 4096;
inline constexpr size_t kMaxFilesystemPaths = 256;
inline constexpr size_t kMaxNetworkRules = 1024;
inline constexpr size_t kMaxEndpointsPerRule = 256;
inline constexpr size_t kMaxBinariesPerRule = 256;
inline constexpr size_t kMaxL7RulesPerEndpoint = 256;

// The in-sandbox identity "sandbox".
inline constexpr uint32_t kSandboxUid = 1000;
inline constexpr uint32_t kSandboxGid = 1000;

struct FilesystemPolicy {
  bool include_workdir = true;
  std::vector<std::string> read_only;   // absolute, normalised (no trailing '/', no "//")
  std::vector<std::string> read_write;
};

enum class LandlockCompatibility { kBestEffort, kHardRequirement };

struct ProcessPolicy {
  uint32_t run_as_user = kSandboxUid;   // "sandbox" -> 1000; 1..4294967294
  uint32_t run_as_group = kSandboxGid;
};

struct CpuMax {
  uint32_t percent = 0;  // "200%" -> 200: two CPUs' worth; kUnlimitedCpu for "max"
  friend bool operator==(const CpuMax&, const CpuMax&) = default;
};

// "max" in [resources]: explicitly no limit (cgroup spelling), unlike a key left out, which
// takes the defaults (the daemon's config, or the supervisor's built-in ones).
inline constexpr uint64_t kUnlimited = UINT64_MAX;
inline constexpr uint32_t kUnlimitedCpu = 0;

struct Resources {
  std::optional<uint64_t> memory_max;  // bytes of the sandbox's cgroup (tmpfs pages included)
  std::optional<CpuMax> cpu_max;
  std::optional<uint64_t> pids_max;
  std::optional<uint64_t> tmp_size;  // bytes of the private /tmp tmpfs
  std::optional<uint64_t> shm_size;  // bytes of the private /dev/shm tmpfs
  friend bool operator==(const Resources&, const Resources&) = default;
};

// What every sandbox gets where neither its policy nor the daemon's config says otherwise:
// memory 4G, cpu 200%, pids 4096, /tmp 1G, /dev/shm 256M.
Resources builtin_resource_defaults();
// Each limit the policy leaves out, from `defaults`.
Resources with_defaults(const Resources& policy, const Resources& defaults);
// The value forms of [resources], for other configuration (the daemon's, the supervisor's
// flags): KEY is memory_max, cpu_max, pids_max, tmp_size or shm_size; VALUE as in a policy, or
// "max". Sets the field, or returns why not.
[[nodiscard]] std::optional<std::string> set_resource(Resources& out, std::string_view key,
                                                      std::string_view value);
// The inverse, for a command line: "memory_max=4294967296", "cpu_max=max", ...
std::vector<std::string> resource_assignments(const Resources& resources);
// A limit each of `effective`'s must stay within, where `caps` sets one: one line per excess,
// naming the key, the asked value and the cap ("max" and unset both exceed any cap).
std::vector<std::string> exceeded_caps(const Resources& effective, const Resources& caps);

enum class Protocol { kL4, kRest, kWebsocket, kTcp, kGraphql, kMcp, kJsonRpc };
enum class Enforcement { kEnforce, kAudit };
enum class Access { kReadOnly, kReadWrite, kFull };

struct QueryMatcher {
  std::vector<std::string> any;  // value globs; a plain string value is a one-element list
};

struct L7Rule {
  std::string method;  // upper-cased; "*" for any
  std::string path;    // glob; empty means any
  std::map<std::string, QueryMatcher> query;
  SourcePos pos;
};

struct Endpoint {
  std::optional<std::string> host;  // lower-cased, trailing dot removed; absent only with allowed_ips
  std::vector<uint16_t> ports;      // never empty after validation
  std::optional<std::string> path;
  Protocol protocol = Protocol::kL4;
  bool tls_skip = false;
  Enforcement enforcement = Enforcement::kEnforce;  // we fail closed (OpenShell defaults to audit)
  std::optional<Access> access;
  std::vector<L7Rule> rules;
  std::vector<L7Rule> deny_rules;
  std::vector<Cidr> allowed_ips;
  bool allow_encoded_slash = false;
  bool request_body_credential_rewrite = false;
  // The provider whose credentials this endpoint takes, and no other's (its profile's hosts
  // notwithstanding). A provider name; needs an L7 protocol (the proxy must see the requests).
  std::optional<std::string> credential_binding;
  SourcePos pos;
};

struct Binary {
  std::string path;  // absolute; may hold '*' / '**' globs ('/' is the separator)
  SourcePos pos;
};

struct NetworkRule {
  std::string name;  // the map key
  std::vector<Endpoint> endpoints;
  std::vector<Binary> binaries;  // empty = any binary
  SourcePos pos;
};

// [inference] (dynamic, like network_policies): which of the daemon's inference routes the
// sandbox's https://inference.local uses, and the privacy rule that picks among them.
struct InferencePolicy {
  std::vector<std::string> routes;  // route names, in order; empty: the daemon decides
  inference::Privacy privacy = inference::Privacy::kAny;
  bool privacy_set = false;  // the section said it (else the daemon's default applies)
  friend bool operator==(const InferencePolicy&, const InferencePolicy&) = default;
};

struct Policy {
  uint32_t version = 1;
  FilesystemPolicy filesystem;
  LandlockCompatibility landlock = LandlockCompatibility::kBestEffort;
  ProcessPolicy process;
  Resources resources;
  std::map<std::string, NetworkRule> network_policies;  // dynamic section
  InferencePolicy inference;                            // dynamic section
  std::string source;  // file name the policy was read from ("<memory>" for strings)
};

struct ParseResult {
  std::shared_ptr<const Policy> policy;  // null when diagnostics is non-empty
  std::vector<Diagnostic> diagnostics;   // every problem found, in file order
  [[nodiscard]] bool ok() const { return policy != nullptr && diagnostics.empty(); }
};

struct ParseOptions {
  // L7 endpoints are part of the language, but this version enforces only protocol rest and
  // websocket (access, rules, deny_rules, enforcement, tls, allow_encoded_slash,
  // credential_binding, request_body_credential_rewrite): unless set, a policy that uses the rest
  // (graphql, mcp, json-rpc, an endpoint's path) is refused, field by field. Only the grammar's
  // own tests set it.
  bool l7 = false;
};

// Parses and validates. Never throws; a syntax error is one diagnostic with its position.
ParseResult parse_policy_string(std::string_view toml_text, std::string_view source_name,
                                ParseOptions options = {});
// Reads at most kMaxPolicyFileBytes; a larger or unreadable file is a diagnostic.
ParseResult parse_policy_file(const std::string& path, ParseOptions options = {});

// What may change in a running sandbox is [network_policies] alone. The static keys whose
// values differ between the two, each as "key: old -> new" ("process.run_as_user: 1000 ->
// 1001"), in a fixed order; empty when only network_policies differ. Used by the daemon (policy
// set, reload) and the supervisor alike.
std::vector<std::string> static_differences(const Policy& running, const Policy& next);

// `next_text` with every static section it leaves out ([filesystem_policy], [landlock],
// [process], [resources]) taken from `running_text`, appended: a policy set that gives only
// [network_policies] keeps what the sandbox runs with, not the built-in defaults. Both must
// parse (they were validated); the caller's text stays as written, comments included.
std::string with_static_sections_of(const std::string& next_text, const std::string& running_text);

// The policy used when none is given: no network, read-only system paths.
std::shared_ptr<const Policy> default_policy();

}  // namespace openshell::policy
