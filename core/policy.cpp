// Policy TOML -> validated Policy value (DESIGN.md §3).
//
// One pass over the TOML tree collects every problem rather than stopping at the first, so an
// operator fixes a policy in one round; a Policy object exists only when nothing was found.
// Each section first picks its known keys out of the table (reporting all others), then checks
// them in a fixed order, because toml++ iterates a table in key order, not file order.
//
// Decisions the schema leaves open, made here:
// - A missing [filesystem_policy] section means default_policy()'s filesystem (read-only system
//   paths, include_workdir), so a network-only policy still yields a usable sandbox. A present
//   section means exactly what it lists.
// - Duplicate paths within one list and duplicate ports are dropped silently; ports are sorted.
// - `path`, `allow_encoded_slash` and `request_body_credential_rewrite` need an L7 protocol, like
//   access/rules/deny_rules: on an L4 endpoint they could not be enforced and would only suggest
//   a restriction that does not exist.
// - What this version cannot enforce is refused unless ParseOptions::l7 (the grammar's own
//   tests): protocols graphql, mcp and json-rpc, and an endpoint's `path`.
// - `credential_binding` names a provider by the provider-name rule only: providers are the
//   daemon's, and a policy may name one before it exists (its placeholders then fail closed).
// - [inference] is dynamic like [network_policies]: a running sandbox takes a change to it.
// - An L7 rule without `method` allows any method; without `path`, any path. A rule path must
//   start with '/' or '*' (a canonical request path always starts with '/').
// - "max" is accepted by every [resources] limit, meaning "no limit" (cgroup spelling); it is kept
//   apart from a limit left out, which takes the defaults (builtin_resource_defaults(), or the
//   daemon's config).
// - Numeric strings ("1000") are accepted as ids by run_as_user/run_as_group, as YAML policies
//   carried over from OpenShell often quote them.
#include "core/policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include <toml++/toml.h>

#include "core/cidr.hpp"
#include "core/host_glob.hpp"
#include "core/names.hpp"
#include "core/path_glob.hpp"
#include "core/unique_fd.hpp"

namespace openshell::policy {
namespace {

// Enough to show every problem of a badly broken file without making its size our output size.
constexpr size_t kMaxDiagnostics = 200;
constexpr size_t kMaxRuleNameLength = 128;
constexpr size_t kMaxMethodLength = 128;
constexpr int64_t kMinId = 1;
constexpr int64_t kMaxId = 4294967294;  // 2^32-1 is (uid_t)-1, "no id"
constexpr int64_t kMaxPids = 4194304;   // the kernel's PID_MAX_LIMIT
constexpr uint64_t kMaxCpuPercent = 100000;
constexpr int64_t kMaxPort = 65535;
constexpr size_t kMaxPortsPerEndpoint = 65535;

using KnownKeys = std::initializer_list<std::string_view>;

SourcePos pos_of(const toml::source_region& region) {
  return SourcePos{region.begin.line, region.begin.column};
}
SourcePos pos_of(const toml::node& node) { return pos_of(node.source()); }

std::string describe_type(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

bool is_bare_key(std::string_view k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

// Quotes a key the way TOML would need it, so a key holding a newline or a quote cannot forge
// a second diagnostic line.
std::string quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string key_component(std::string_view k) { return is_bare_key(k) ? std::string(k) : quote(k); }

std::string join_key(const std::string& parent, std::string_view k) {
  return parent.empty() ? key_component(k) : parent + "." + key_component(k);
}

std::string index_key(const std::string& parent, size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string unknown_key_reason(std::string_view k, KnownKeys known) {
  std::string reason = "unknown key " + quote(k);
  std::string_view best;
  size_t best_distance = SIZE_MAX;
  // Bounded so a megabyte-long key costs nothing.
  if (k.size() <= 64) {
    for (std::string_view cand : known) {
      const size_t d = edit_distance(k, cand);
      // Two edits, or three between longer words ("binary" -> "binaries").
      const size_t allowed = std::min(k.size(), cand.size()) >= 6 ? 3 : 2;
      if (d <= allowed && d < best_distance) {
        best_distance = d;
        best = cand;
      }
    }
  }
  if (!best.empty()) reason += "; did you mean " + quote(best) + "?";
  return reason;
}

// The filesystem rules: absolute, no NUL, no "..", bounded; "//", "." and a trailing '/' go.
Result<std::string> normalize_path(std::string_view raw) {
  if (raw.empty()) return Error::invalid("path is empty");
  if (raw.find('\0') != std::string_view::npos) return Error::invalid("path contains a NUL byte");
  if (raw.size() > kMaxPathLength) {
    return Error::invalid("path is longer than " + std::to_string(kMaxPathLength) + " characters");
  }
  if (raw.front() != '/') {
    return Error::invalid("relative path " + quote(raw) + ": paths must be absolute");
  }
  std::string out;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t slash = raw.find('/', start);
    if (slash == std::string_view::npos) slash = raw.size();
    const std::string_view part = raw.substr(start, slash - start);
    if (part == "..") {
      return Error::invalid("path " + quote(raw) + " contains a '..' component");
    }
    if (!part.empty() && part != ".") {
      out += '/';
      out += part;
    }
    start = slash + 1;
  }
  if (out.empty()) out = "/";
  return out;
}

struct ReservedRange {
  std::string_view cidr;
  std::string_view what;
};
constexpr std::array<ReservedRange, 6> kReservedRanges = {{
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local, cloud metadata"},
    {"0.0.0.0/32", "unspecified address"},
    {"::1/128", "IPv6 loopback"},
    {"fe80::/10", "IPv6 link-local"},
    {"::/128", "IPv6 unspecified address"},
}};

struct ProtocolName {
  std::string_view name;
  Protocol protocol;
};
constexpr std::array<ProtocolName, 6> kProtocols = {{
    {"rest", Protocol::kRest},
    {"websocket", Protocol::kWebsocket},
    {"tcp", Protocol::kTcp},
    {"graphql", Protocol::kGraphql},
    {"mcp", Protocol::kMcp},
    {"json-rpc", Protocol::kJsonRpc},
}};

std::string_view protocol_name(Protocol p) {
  for (const auto& entry : kProtocols) {
    if (entry.protocol == p) return entry.name;
  }
  return "L4";
}

bool is_l7(Protocol p) { return p != Protocol::kL4 && p != Protocol::kTcp; }

bool is_method_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Every endpoint of the policy, for the cross-rule conflict check.
struct EndpointRef {
  const Endpoint* endpoint;
  std::string key;
};

// The known keys of one table, looked up by name once the table has been scanned.
class Picked {
 public:
  const toml::node* get(std::string_view k) const {
    for (const auto& [name, node] : entries_) {
      if (name == k) return node;
    }
    return nullptr;
  }
  void add(std::string_view k, const toml::node* node) { entries_.emplace_back(k, node); }

 private:
  std::vector<std::pair<std::string_view, const toml::node*>> entries_;
};

// "<digits>[K|M|G|T|Ki|Mi|Gi|Ti]", powers of 1024; nullopt with `why` set otherwise.
std::optional<uint64_t> parse_size(std::string_view s, std::string& why) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  std::string_view suffix = s.substr(digits);
  if (suffix.size() == 2 && (suffix[1] == 'i' || suffix[1] == 'I')) suffix = suffix.substr(0, 1);
  unsigned shift = 0;
  if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        break;
    }
  }
  if (digits == 0 || (!suffix.empty() && shift == 0)) {
    why = "malformed size " + quote(s) + " (expected bytes, or digits with K, M, G or T)";
    return std::nullopt;
  }
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    const auto d = static_cast<uint64_t>(s[i] - '0');
    if (value > (UINT64_MAX - d) / 10) {
      why = "size " + quote(s) + " is too large";
      return std::nullopt;
    }
    value = value * 10 + d;
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) {
    why = "size " + quote(s) + " is too large";
    return std::nullopt;
  }
  return value << shift;
}

// The value forms of [resources] (and of the daemon's config): each returns why not, or
// nothing with `out` set. "max" is kUnlimited (kUnlimitedCpu).
std::optional<std::string> bytes_value(std::string_view key, std::string_view s, uint64_t& out) {
  if (s == "max") {
    out = kUnlimited;
    return std::nullopt;
  }
  std::string why;
  auto bytes = parse_size(s, why);
  if (!bytes) return why;
  if (*bytes == 0 || *bytes == kUnlimited)
    return std::string(key) + " must be greater than zero (or \"max\")";
  out = *bytes;
  return std::nullopt;
}

std::optional<std::string> cpu_value(std::string_view v, CpuMax& out) {
  if (v == "max") {
    out = CpuMax{kUnlimitedCpu};
    return std::nullopt;
  }
  const size_t digits = v.empty() ? 0 : v.size() - 1;
  const bool well_formed = digits > 0 && digits <= 7 && v.back() == '%' &&
                           std::all_of(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(digits),
                                       [](char c) { return c >= '0' && c <= '9'; });
  if (!well_formed)
    return "malformed cpu_max " + quote(v) + " (expected a percentage like \"200%\", or \"max\")";
  const uint64_t percent = std::stoull(std::string(v.substr(0, digits)));
  if (percent < 1 || percent > kMaxCpuPercent)
    return "cpu_max must be between 1% and " + std::to_string(kMaxCpuPercent) + "%";
  out = CpuMax{static_cast<uint32_t>(percent)};
  return std::nullopt;
}

std::optional<std::string> pids_value(int64_t n, uint64_t& out) {
  if (n < 1 || n > kMaxPids) return "pids_max must be between 1 and " + std::to_string(kMaxPids);
  out = static_cast<uint64_t>(n);
  return std::nullopt;
}

class Validator {
 public:
  Validator(std::string file, ParseOptions options)
      : file_(std::move(file)), options_(options) {}

  std::vector<Diagnostic> take_diagnostics() { return std::move(diags_); }

  void report(SourcePos pos, std::string key, std::string reason) {
    diags_.push_back(Diagnostic{file_, pos, std::move(key), std::move(reason)});
  }
  void report(const toml::node& node, std::string key, std::string reason) {
    report(pos_of(node), std::move(key), std::move(reason));
  }

  Policy validate(const toml::table& root) {
    Policy policy;
    policy.source = file_;
    const Picked top = pick(
        root, "",
        {"version", "filesystem_policy", "landlock", "process", "resources", "network_policies",
         "inference"});

    if (const toml::node* v = top.get("version")) {
      if (auto n = want_int(*v, "version")) {
        if (*n != 1) {
          report(*v, "version",
                 "unsupported version " + std::to_string(*n) + "; only version 1 is understood");
        }
      }
    } else {
      report(SourcePos{1, 1}, "version", "missing required key \"version\" (set version = 1)");
    }

    if (const toml::node* n = top.get("filesystem_policy")) {
      if (const toml::table* t = want_table(*n, "filesystem_policy")) {
        policy.filesystem = FilesystemPolicy{};
        filesystem(*t, policy.filesystem);
      }
    } else {
      policy.filesystem = default_policy()->filesystem;
    }
    if (const toml::node* n = top.get("landlock")) {
      if (const toml::table* t = want_table(*n, "landlock")) landlock(*t, policy.landlock);
    }
    if (const toml::node* n = top.get("process")) {
      if (const toml::table* t = want_table(*n, "process")) process(*t, policy.process);
    }
    if (const toml::node* n = top.get("resources")) {
      if (const toml::table* t = want_table(*n, "resources")) resources(*t, policy.resources);
    }
    if (const toml::node* n = top.get("network_policies")) {
      if (const toml::table* t = want_table(*n, "network_policies")) {
        network_policies(*t, policy.network_policies);
      }
    }
    if (const toml::node* n = top.get("inference")) {
      if (const toml::table* t = want_table(*n, "inference")) inference_section(*t, policy.inference);
    }
    return policy;
  }

 private:
  // --- typed access; a mismatch is reported and yields nothing -------------------------------

  void wrong_type(const toml::node& node, const std::string& key, std::string_view expected) {
    report(node, key,
           "expected " + std::string(expected) + ", found " + describe_type(node.type()));
  }

  const toml::table* want_table(const toml::node& node, const std::string& key) {
    if (const toml::table* t = node.as_table()) return t;
    wrong_type(node, key, "a table");
    return nullptr;
  }
  const toml::array* want_array(const toml::node& node, const std::string& key) {
    if (const toml::array* a = node.as_array()) return a;
    wrong_type(node, key, "an array");
    return nullptr;
  }
  std::optional<std::string> want_string(const toml::node& node, const std::string& key) {
    if (const auto* s = node.as_string()) return s->get();
    wrong_type(node, key, "a string");
    return std::nullopt;
  }
  std::optional<bool> want_bool(const toml::node& node, const std::string& key) {
    if (const auto* b = node.as_boolean()) return b->get();
    wrong_type(node, key, "a boolean");
    return std::nullopt;
  }
  std::optional<int64_t> want_int(const toml::node& node, const std::string& key) {
    if (const auto* i = node.as_integer()) return i->get();
    wrong_type(node, key, "an integer");
    return std::nullopt;
  }

  Picked pick(const toml::table& table, const std::string& parent, KnownKeys known) {
    Picked picked;
    for (auto&& [k, node] : table) {
      const auto it = std::find(known.begin(), known.end(), k.str());
      if (it == known.end()) {
        report(pos_of(k.source()), join_key(parent, k.str()), unknown_key_reason(k.str(), known));
      } else {
        picked.add(*it, &node);
      }
    }
    return picked;
  }

  // --- [inference] ---------------------------------------------------------------------------

  static constexpr size_t kMaxRoutes = 32;

  void inference_section(const toml::table& t, InferencePolicy& out) {
    const std::string parent = "inference";
    const Picked p = pick(t, parent, {"routes", "privacy"});
    if (const toml::node* n = p.get("routes")) {
      if (const toml::array* a = want_array(*n, parent + ".routes")) {
        if (a->size() > kMaxRoutes)
          report(*n, parent + ".routes",
                 "at most " + std::to_string(kMaxRoutes) + " routes, found " +
                     std::to_string(a->size()));
        for (size_t i = 0; i < a->size() && i < kMaxRoutes; ++i) {
          const std::string k = index_key(parent + ".routes", i);
          auto s = want_string(*a->get(i), k);
          if (!s) continue;
          if (!valid_sandbox_name(*s)) {
            report(*a->get(i), k, "bad route name " + quote(*s));
          } else if (std::find(out.routes.begin(), out.routes.end(), *s) == out.routes.end()) {
            out.routes.push_back(*s);
          }
        }
      }
    }
    if (const toml::node* n = p.get("privacy")) {
      if (auto s = want_string(*n, parent + ".privacy")) {
        if (auto privacy = inference::parse_privacy(*s)) {
          out.privacy = *privacy;
          out.privacy_set = true;
        } else {
          report(*n, parent + ".privacy",
                 "unknown privacy " + quote(*s) + " (local-only, prefer-local or any)");
        }
      }
    }
  }

  // --- static sections -----------------------------------------------------------------------

  struct FsEntry {
    std::string path;
    SourcePos pos;
    std::string key;
    bool read_write;
  };

  void filesystem(const toml::table& t, FilesystemPolicy& out) {
    const std::string parent = "filesystem_policy";
    const Picked p = pick(t, parent, {"include_workdir", "read_only", "read_write"});
    if (const toml::node* n = p.get("include_workdir")) {
      if (auto b = want_bool(*n, parent + ".include_workdir")) out.include_workdir = *b;
    }
    std::vector<FsEntry> entries;
    for (const bool rw : {false, true}) {
      const std::string_view name = rw ? "read_write" : "read_only";
      const toml::node* n = p.get(name);
      if (n == nullptr) continue;
      const std::string key = join_key(parent, name);
      const toml::array* a = want_array(*n, key);
      if (a == nullptr) continue;
      for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& e = *a->get(i);
        const std::string ekey = index_key(key, i);
        auto s = want_string(e, ekey);
        if (!s) continue;
        auto norm = normalize_path(*s);
        if (!norm) {
          report(e, ekey, norm.error().context);
          continue;
        }
        if (rw && *norm == "/") {
          report(e, ekey, "read-write / would expose the whole host");
          continue;
        }
        entries.push_back(FsEntry{std::move(*norm), pos_of(e), ekey, rw});
      }
    }
    std::stable_sort(entries.begin(), entries.end(), [](const FsEntry& a, const FsEntry& b) {
      return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
    });
    if (entries.size() > kMaxFilesystemPaths) {
      const FsEntry& first_over = entries[kMaxFilesystemPaths];
      report(first_over.pos, first_over.key,
             "too many filesystem paths: " + std::to_string(entries.size()) + " (limit " +
                 std::to_string(kMaxFilesystemPaths) + ")");
      return;
    }
    std::map<std::string, const FsEntry*> seen;
    for (const FsEntry& e : entries) {
      auto [it, inserted] = seen.emplace(e.path, &e);
      if (inserted) {
        (e.read_write ? out.read_write : out.read_only).push_back(e.path);
      } else if (it->second->read_write != e.read_write) {
        report(e.pos, e.key,
               quote(e.path) + " is listed in both read_only and read_write (other at " +
                   std::to_string(it->second->pos.line) + ":" +
                   std::to_string(it->second->pos.column) + "); a path is one or the other");
      }
    }
  }

  void landlock(const toml::table& t, LandlockCompatibility& out) {
    const Picked p = pick(t, "landlock", {"compatibility"});
    const toml::node* n = p.get("compatibility");
    if (n == nullptr) return;
    const std::string key = "landlock.compatibility";
    auto s = want_string(*n, key);
    if (!s) return;
    if (*s == "best_effort") {
      out = LandlockCompatibility::kBestEffort;
    } else if (*s == "hard_requirement") {
      out = LandlockCompatibility::kHardRequirement;
    } else {
      report(*n, key,
             "unknown compatibility " + quote(*s) + " (expected best_effort or hard_requirement)");
    }
  }

  void identity(const toml::node& n, const std::string& key, uint32_t sandbox_id, uint32_t& out) {
    std::optional<int64_t> id;
    if (const auto* i = n.as_integer()) {
      id = i->get();
    } else if (const auto* s = n.as_string()) {
      const std::string& name = s->get();
      if (name == "sandbox") {
        out = sandbox_id;
        return;
      }
      if (name == "root") {
        report(n, key, "root is not allowed: the agent never runs as root");
        return;
      }
      const bool numeric =
          !name.empty() && name.size() <= 10 &&
          std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!numeric) {
        report(n, key,
               "unknown identity " + quote(name) + " (use \"sandbox\" or an id from 1 to " +
                   std::to_string(kMaxId) + ")");
        return;
      }
      id = std::stoll(name);
    } else {
      wrong_type(n, key, "a string or an integer");
      return;
    }
    if (*id == 0) {
      report(n, key, "root (id 0) is not allowed: the agent never runs as root");
    } else if (*id < kMinId || *id > kMaxId) {
      report(
          n, key,
          "id " + std::to_string(*id) + " is out of range (1 to " + std::to_string(kMaxId) + ")");
    } else {
      out = static_cast<uint32_t>(*id);
    }
  }

  void process(const toml::table& t, ProcessPolicy& out) {
    const Picked p = pick(t, "process", {"run_as_user", "run_as_group"});
    if (const toml::node* n = p.get("run_as_user")) {
      identity(*n, "process.run_as_user", kSandboxUid, out.run_as_user);
    }
    if (const toml::node* n = p.get("run_as_group")) {
      identity(*n, "process.run_as_group", kSandboxGid, out.run_as_group);
    }
  }


  void resources(const toml::table& t, Resources& out) {
    const Picked p =
        pick(t, "resources", {"memory_max", "cpu_max", "pids_max", "tmp_size", "shm_size"});
    const auto bytes = [&](std::string_view name, std::optional<uint64_t>& field) {
      const toml::node* n = p.get(name);
      if (n == nullptr) return;
      const std::string key = "resources." + std::string(name);
      uint64_t value = 0;
      std::optional<std::string> why;
      if (const auto* i = n->as_integer()) {
        if (i->get() <= 0) {
          why = std::string(name) + " must be greater than zero";
        } else {
          value = static_cast<uint64_t>(i->get());
        }
      } else if (const auto* s = n->as_string()) {
        why = bytes_value(name, s->get(), value);
      } else {
        wrong_type(*n, key, "a string or an integer");
        return;
      }
      if (why) {
        report(*n, key, *why);
      } else {
        field = value;
      }
    };
    bytes("memory_max", out.memory_max);
    if (const toml::node* n = p.get("cpu_max")) {
      const std::string key = "resources.cpu_max";
      if (auto s = want_string(*n, key)) {
        CpuMax cpu;
        if (auto why = cpu_value(*s, cpu)) {
          report(*n, key, *why);
        } else {
          out.cpu_max = cpu;
        }
      }
    }
    if (const toml::node* n = p.get("pids_max")) {
      const std::string key = "resources.pids_max";
      uint64_t value = 0;
      if (const auto* i = n->as_integer()) {
        if (auto why = pids_value(i->get(), value)) {
          report(*n, key, *why);
        } else {
          out.pids_max = value;
        }
      } else if (n->is_string() && n->as_string()->get() == "max") {
        out.pids_max = kUnlimited;
      } else {
        wrong_type(*n, key, "an integer or \"max\"");
      }
    }
    bytes("tmp_size", out.tmp_size);
    bytes("shm_size", out.shm_size);
  }

  // --- network_policies ----------------------------------------------------------------------

  static bool valid_rule_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxRuleNameLength &&
           std::all_of(name.begin(), name.end(), [](char c) {
             return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
           });
  }

  void network_policies(const toml::table& t, std::map<std::string, NetworkRule>& out) {
    const std::string parent = "network_policies";
    if (t.size() > kMaxNetworkRules) {
      report(t, parent,
             "too many network policies: " + std::to_string(t.size()) + " (limit " +
                 std::to_string(kMaxNetworkRules) + ")");
      return;
    }
    for (auto&& [k, node] : t) {
      const std::string key = join_key(parent, k.str());
      if (!valid_rule_name(k.str())) {
        report(pos_of(k.source()), key,
               "invalid policy name " + quote(k.str()) + " (use 1 to " +
                   std::to_string(kMaxRuleNameLength) + " of A-Z a-z 0-9 _ . -)");
        continue;
      }
      const toml::table* rt = want_table(node, key);
      if (rt == nullptr) continue;
      NetworkRule rule;
      rule.name = std::string(k.str());
      rule.pos = pos_of(node);
      network_rule(*rt, key, rule);
      std::string name = rule.name;
      out.emplace(std::move(name), std::move(rule));
    }
    check_conflicts(out);
  }

  void network_rule(const toml::table& t, const std::string& parent, NetworkRule& rule) {
    const Picked p = pick(t, parent, {"name", "endpoints", "binaries"});
    if (const toml::node* n = p.get("name")) {
      (void)want_string(*n, parent + ".name");  // informational only; the map key names the rule
    }
    if (const toml::node* n = p.get("endpoints")) {
      const std::string key = parent + ".endpoints";
      if (const toml::array* a = want_array(*n, key)) {
        if (a->size() > kMaxEndpointsPerRule) {
          report(*n, key,
                 "too many endpoints: " + std::to_string(a->size()) + " (limit " +
                     std::to_string(kMaxEndpointsPerRule) + ")");
        } else {
          for (size_t i = 0; i < a->size(); ++i) {
            const toml::node& e = *a->get(i);
            const std::string ekey = index_key(key, i);
            if (const toml::table* et = want_table(e, ekey)) {
              rule.endpoints.push_back(endpoint(*et, ekey));
            }
          }
        }
      }
    }
    if (const toml::node* n = p.get("binaries")) {
      const std::string key = parent + ".binaries";
      if (const toml::array* a = want_array(*n, key)) {
        if (a->size() > kMaxBinariesPerRule) {
          report(*n, key,
                 "too many binaries: " + std::to_string(a->size()) + " (limit " +
                     std::to_string(kMaxBinariesPerRule) + ")");
        } else {
          for (size_t i = 0; i < a->size(); ++i) {
            const toml::node& e = *a->get(i);
            const std::string bkey = index_key(key, i);
            if (const toml::table* bt = want_table(e, bkey)) {
              if (auto b = binary(*bt, bkey)) rule.binaries.push_back(std::move(*b));
            }
          }
        }
      }
    }
  }

  std::optional<Binary> binary(const toml::table& t, const std::string& parent) {
    const Picked p = pick(t, parent, {"path"});
    const toml::node* n = p.get("path");
    const std::string key = parent + ".path";
    if (n == nullptr) {
      report(t, key, "binary entry has no path");
      return std::nullopt;
    }
    auto s = want_string(*n, key);
    if (!s) return std::nullopt;
    auto norm = normalize_path(*s);
    if (!norm) {
      report(*n, key, norm.error().context);
      return std::nullopt;
    }
    if (auto glob = validate_glob(*norm); !glob) {
      report(*n, key, "bad glob: " + glob.error().context);
      return std::nullopt;
    }
    return Binary{std::move(*norm), pos_of(t)};
  }

  // A request-path glob: well-formed and able to match a canonical path.
  void check_request_path(const toml::node& n, const std::string& key, const std::string& path) {
    if (path.empty()) {
      report(n, key, "path is empty");
    } else if (path.size() > kMaxPathLength) {
      report(n, key, "path is longer than " + std::to_string(kMaxPathLength) + " characters");
    } else if (auto glob = validate_glob(path); !glob) {
      report(n, key, "bad glob: " + glob.error().context);
    } else if (path.front() != '/' && path.front() != '*') {
      report(n, key, "path " + quote(path) + " must start with '/' (or a wildcard)");
    }
  }

  void query_value_glob(const toml::node& n, const std::string& key, std::string value,
                        QueryMatcher& out) {
    if (auto glob = validate_glob(value); !glob) {
      report(n, key, "bad glob: " + glob.error().context);
      return;
    }
    out.any.push_back(std::move(value));
  }

  // {method, path, query}: the body of an allow rule and a whole deny rule.
  // HTTP methods (rest, websocket, graphql) are tokens and compare case-insensitively, so they
  // are upper-cased here. MCP and JSON-RPC method names ("tools/call") are case-sensitive
  // strings and are kept as written.
  L7Rule l7_match(const toml::table& t, const std::string& parent, Protocol protocol) {
    L7Rule rule;
    rule.method = "*";
    rule.pos = pos_of(t);
    const Picked p = pick(t, parent, {"method", "path", "query"});
    if (const toml::node* n = p.get("method")) {
      const std::string key = parent + ".method";
      if (auto s = want_string(*n, key)) {
        const bool rpc = protocol == Protocol::kMcp || protocol == Protocol::kJsonRpc;
        std::string m = *s;
        bool well_formed = !m.empty() && m.size() <= kMaxMethodLength;
        if (rpc) {
          well_formed = well_formed && std::all_of(m.begin(), m.end(),
                                                   [](char c) { return c > 0x20 && c < 0x7f; });
        } else {
          std::transform(m.begin(), m.end(), m.begin(), [](char c) {
            return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
          });
          well_formed =
              well_formed && (m == "*" || std::all_of(m.begin(), m.end(), is_method_char));
        }
        if (!well_formed) {
          report(*n, key,
                 "malformed method " + quote(*s) +
                     (rpc ? " (a method name of printable characters, or \"*\")"
                          : " (an HTTP method name, or \"*\")"));
        } else {
          rule.method = std::move(m);
        }
      }
    }
    if (const toml::node* n = p.get("path")) {
      const std::string key = parent + ".path";
      if (auto s = want_string(*n, key)) {
        check_request_path(*n, key, *s);
        rule.path = std::move(*s);
      }
    }
    if (const toml::node* n = p.get("query")) {
      const std::string key = parent + ".query";
      if (const toml::table* q = want_table(*n, key)) {
        for (auto&& [name, value] : *q) {
          const std::string qkey = join_key(key, name.str());
          if (name.str().empty()) {
            report(pos_of(name.source()), qkey, "query parameter name is empty");
            continue;
          }
          QueryMatcher matcher;
          if (const auto* s = value.as_string()) {
            query_value_glob(value, qkey, s->get(), matcher);
          } else if (const toml::table* any_table = value.as_table()) {
            const Picked ap = pick(*any_table, qkey, {"any"});
            const toml::node* any = ap.get("any");
            const std::string akey = qkey + ".any";
            if (any == nullptr) {
              report(value, akey, "query matcher table needs an \"any\" list");
            } else if (const toml::array* arr = want_array(*any, akey)) {
              if (arr->empty()) report(*any, akey, "any is empty: it would match nothing");
              for (size_t i = 0; i < arr->size(); ++i) {
                const toml::node& v = *arr->get(i);
                if (auto vs = want_string(v, index_key(akey, i))) {
                  query_value_glob(v, index_key(akey, i), std::move(*vs), matcher);
                }
              }
            }
          } else {
            wrong_type(value, qkey, "a string or a table { any = [...] }");
          }
          rule.query.emplace(std::string(name.str()), std::move(matcher));
        }
      }
    }
    return rule;
  }

  // rules = [{ allow = {...} }] or deny_rules = [{...}]; nullptr entries were reported.
  std::vector<L7Rule> l7_rules(const toml::node& n, const std::string& key, bool allow_wrapper,
                               Protocol protocol) {
    std::vector<L7Rule> out;
    const toml::array* a = want_array(n, key);
    if (a == nullptr) return out;
    const std::string_view what = allow_wrapper ? "rules" : "deny_rules";
    if (a->empty()) {
      report(n, key, std::string(what) + " is empty: omit it or list at least one rule");
      return out;
    }
    if (a->size() > kMaxL7RulesPerEndpoint) {
      report(n, key,
             "too many " + std::string(what) + ": " + std::to_string(a->size()) + " (limit " +
                 std::to_string(kMaxL7RulesPerEndpoint) + ")");
      return out;
    }
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const std::string rkey = index_key(key, i);
      const toml::table* rt = want_table(e, rkey);
      if (rt == nullptr) continue;
      if (!allow_wrapper) {
        out.push_back(l7_match(*rt, rkey, protocol));
        continue;
      }
      const Picked p = pick(*rt, rkey, {"allow"});
      const toml::node* allow = p.get("allow");
      if (allow == nullptr) {
        report(e, rkey + ".allow", "rule has no allow table (rules = [{ allow = { ... } }])");
        continue;
      }
      if (const toml::table* at = want_table(*allow, rkey + ".allow")) {
        L7Rule rule = l7_match(*at, rkey + ".allow", protocol);
        rule.pos = pos_of(e);
        out.push_back(std::move(rule));
      }
    }
    return out;
  }

  void allowed_ips(const toml::node& n, const std::string& key, std::vector<Cidr>& out) {
    const toml::array* a = want_array(n, key);
    if (a == nullptr) return;
    for (size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const std::string ekey = index_key(key, i);
      auto s = want_string(e, ekey);
      if (!s) continue;
      auto cidr = parse_cidr(*s);
      if (!cidr) {
        report(e, ekey, "bad CIDR " + quote(*s) + ": " + cidr.error().context);
        continue;
      }
      std::string hits;
      size_t count = 0;
      for (const ReservedRange& r : kReservedRanges) {
        if (overlaps(*cidr, *parse_cidr(r.cidr))) {
          if (count++ != 0) hits += ", ";
          hits += std::string(r.cidr) + " (" + std::string(r.what) + ")";
        }
      }
      if (count != 0) {
        report(e, ekey,
               quote(*s) + " overlaps the reserved range" + (count > 1 ? "s " : " ") + hits +
                   ", which allowed_ips can never open");
        continue;
      }
      out.push_back(*cidr);
    }
  }

  Endpoint endpoint(const toml::table& t, const std::string& parent) {
    Endpoint ep;
    ep.pos = pos_of(t);
    const Picked p = pick(
        t, parent,
        {"host", "port", "ports", "path", "protocol", "tls", "enforcement", "access", "rules",
         "deny_rules", "allowed_ips", "allow_encoded_slash", "request_body_credential_rewrite",
         "credential_binding"});
    auto key = [&parent](std::string_view k) { return parent + "." + std::string(k); };

    const toml::node* host = p.get("host");
    if (host != nullptr) {
      if (auto s = want_string(*host, key("host"))) {
        if (auto hp = HostPattern::parse(*s)) {
          ep.host = hp->text();
        } else {
          report(*host, key("host"), "bad host " + quote(*s) + ": " + hp.error().context);
        }
      }
    }

    const toml::node* port = p.get("port");
    const toml::node* ports = p.get("ports");
    auto port_value = [&](const toml::node& n, const std::string& k) {
      if (auto v = want_int(n, k)) {
        if (*v < 1 || *v > kMaxPort) {
          report(n, k, "port " + std::to_string(*v) + " is out of range (1 to 65535)");
        } else {
          ep.ports.push_back(static_cast<uint16_t>(*v));
        }
      }
    };
    if (ports != nullptr) {
      if (port != nullptr) (void)want_int(*port, key("port"));  // `ports` wins; still type-checked
      if (const toml::array* a = want_array(*ports, key("ports"))) {
        if (a->empty()) report(*ports, key("ports"), "ports is empty");
        if (a->size() > kMaxPortsPerEndpoint) {
          report(*ports, key("ports"), "too many ports");
        } else {
          for (size_t i = 0; i < a->size(); ++i) port_value(*a->get(i), index_key(key("ports"), i));
        }
      }
    } else if (port != nullptr) {
      port_value(*port, key("port"));
    }
    std::sort(ep.ports.begin(), ep.ports.end());
    ep.ports.erase(std::unique(ep.ports.begin(), ep.ports.end()), ep.ports.end());

    const toml::node* path = p.get("path");
    if (path != nullptr) {
      if (auto s = want_string(*path, key("path"))) {
        check_request_path(*path, key("path"), *s);
        ep.path = std::move(*s);
      }
    }

    const toml::node* protocol = p.get("protocol");
    bool protocol_known = false;
    if (protocol != nullptr) {
      if (auto s = want_string(*protocol, key("protocol"))) {
        const auto it = std::find_if(kProtocols.begin(), kProtocols.end(),
                                     [&](const ProtocolName& e) { return e.name == *s; });
        if (it == kProtocols.end()) {
          report(*protocol, key("protocol"),
                 "unknown protocol " + quote(*s) +
                     " (expected rest, websocket, tcp, graphql, mcp or json-rpc; omit it for L4)");
        } else {
          ep.protocol = it->protocol;
          protocol_known = true;
        }
      }
    }

    if (const toml::node* n = p.get("tls")) {
      if (auto s = want_string(*n, key("tls"))) {
        if (*s == "skip") {
          ep.tls_skip = true;
        } else if (*s != "terminate" && *s != "passthrough") {
          // "terminate" and "passthrough" are OpenShell's deprecated no-ops; accepted so its
          // policies carry over.
          report(*n, key("tls"),
                 "unknown tls mode " + quote(*s) + " (only \"skip\" has an effect)");
        }
      }
    }

    if (const toml::node* n = p.get("enforcement")) {
      if (auto s = want_string(*n, key("enforcement"))) {
        if (*s == "enforce") {
          ep.enforcement = Enforcement::kEnforce;
        } else if (*s == "audit") {
          ep.enforcement = Enforcement::kAudit;
        } else {
          report(*n, key("enforcement"),
                 "unknown enforcement " + quote(*s) + " (expected enforce or audit)");
        }
      }
    }

    const toml::node* access = p.get("access");
    if (access != nullptr) {
      if (auto s = want_string(*access, key("access"))) {
        if (*s == "read-only") {
          ep.access = Access::kReadOnly;
        } else if (*s == "read-write") {
          ep.access = Access::kReadWrite;
        } else if (*s == "full") {
          ep.access = Access::kFull;
        } else {
          report(*access, key("access"),
                 "unknown access " + quote(*s) + " (expected read-only, read-write or full)");
        }
      }
    }

    const toml::node* rules = p.get("rules");
    if (rules != nullptr)
      ep.rules = l7_rules(*rules, key("rules"), /*allow_wrapper=*/true, ep.protocol);
    const toml::node* deny = p.get("deny_rules");
    if (deny != nullptr)
      ep.deny_rules = l7_rules(*deny, key("deny_rules"), /*allow_wrapper=*/false, ep.protocol);

    const toml::node* ips = p.get("allowed_ips");
    if (ips != nullptr) allowed_ips(*ips, key("allowed_ips"), ep.allowed_ips);

    const toml::node* encoded_slash = p.get("allow_encoded_slash");
    if (encoded_slash != nullptr) {
      if (auto b = want_bool(*encoded_slash, key("allow_encoded_slash"))) {
        ep.allow_encoded_slash = *b;
      }
    }
    const toml::node* body_rewrite = p.get("request_body_credential_rewrite");
    if (body_rewrite != nullptr) {
      if (auto b = want_bool(*body_rewrite, key("request_body_credential_rewrite"))) {
        ep.request_body_credential_rewrite = *b;
      }
    }
    const toml::node* binding = p.get("credential_binding");
    if (binding != nullptr) {
      if (auto s = want_string(*binding, key("credential_binding"))) {
        if (valid_sandbox_name(*s)) {
          ep.credential_binding = *s;
        } else {
          report(*binding, key("credential_binding"), "bad provider name " + quote(*s));
        }
      }
    }

    // --- how the fields fit together ---
    const bool has_allowed_ips = ips != nullptr && ips->is_array() && !ips->as_array()->empty();
    if (host == nullptr && !has_allowed_ips) {
      report(ep.pos, key("host"),
             "endpoint has no host; only an endpoint with allowed_ips may omit it");
    } else if (host == nullptr && ep.protocol == Protocol::kTcp) {
      report(ep.pos, key("host"), "protocol tcp needs a host (it is resolved by the policy DNS)");
    }
    if (port == nullptr && ports == nullptr) {
      report(ep.pos, key("port"), "endpoint has no port (set port or ports)");
    }

    // With an unknown protocol (already reported) nothing can be said about the L7 fields.
    if (protocol != nullptr && !protocol_known) return ep;
    if (!is_l7(ep.protocol)) {
      const std::string what = ep.protocol == Protocol::kTcp ? "protocol tcp" : "L4 (no protocol)";
      const auto l7_only = [&](const toml::node* n, std::string_view field, bool set) {
        if (n != nullptr && set) {
          report(*n, key(field),
                 std::string(field) +
                     " needs an L7 protocol (rest, websocket, graphql, mcp, json-rpc), but this "
                     "endpoint is " +
                     what);
        }
      };
      l7_only(access, "access", true);
      l7_only(rules, "rules", true);
      l7_only(deny, "deny_rules", true);
      l7_only(path, "path", true);
      l7_only(encoded_slash, "allow_encoded_slash", ep.allow_encoded_slash);
      l7_only(body_rewrite, "request_body_credential_rewrite", ep.request_body_credential_rewrite);
      l7_only(binding, "credential_binding", true);
      return ep;
    }

    if (!options_.l7) {
      // The grammar is checked above. What this version cannot enforce is refused, field by
      // field: a security tool must never quietly enforce less than its policy says. REST and
      // WebSocket rules are enforced (TLS termination, issue 15); the rest is not yet.
      const auto unavailable = [&](const toml::node* n, std::string_view field,
                                   std::string_view why) {
        if (n != nullptr) report(*n, key(field), std::string(field) + " " + std::string(why));
      };
      if (ep.protocol != Protocol::kRest && ep.protocol != Protocol::kWebsocket) {
        const std::string later = "is not enforced in this version (protocol rest and websocket "
                                  "are; omit protocol for an L4 endpoint)";
        report(*protocol, key("protocol"),
               "protocol " + std::string(protocol_name(ep.protocol)) + " " + later);
        unavailable(access, "access", later);
        unavailable(rules, "rules", later);
        unavailable(deny, "deny_rules", later);
        unavailable(path, "path", later);
        unavailable(p.get("enforcement"), "enforcement", later);
        unavailable(p.get("tls"), "tls", later);
        unavailable(encoded_slash, "allow_encoded_slash", later);
        unavailable(body_rewrite, "request_body_credential_rewrite", later);
        unavailable(binding, "credential_binding", later);
        return ep;
      }
      unavailable(path, "path",
                  "(choosing among endpoints by request path) is not enforced in this version; "
                  "put the path in rules instead");
    }
    if (access != nullptr && rules != nullptr) {
      report(*access, key("access"), "access and rules are exclusive: use one or the other");
    }
    if (access != nullptr && (ep.protocol == Protocol::kMcp || ep.protocol == Protocol::kJsonRpc)) {
      report(*access, key("access"),
             "access is not valid for protocol " + std::string(protocol_name(ep.protocol)) +
                 "; use rules");
    }
    if (access == nullptr && rules == nullptr) {
      if (deny != nullptr) {
        report(*deny, key("deny_rules"),
               "deny_rules need an allow basis: set access or rules as well");
      } else {
        // protocol is non-null here: only an explicit protocol makes an endpoint L7.
        report(protocol != nullptr ? pos_of(*protocol) : ep.pos, key("protocol"),
               "protocol " + std::string(protocol_name(ep.protocol)) +
                   " needs access or rules (an L7 endpoint with neither allows nothing)");
      }
    }
    return ep;
  }

  // Two endpoints with the same exact host, a shared port and the same path but a different
  // protocol or tls setting leave the proxy two answers for one connection: reject the policy.
  // Linear: the first endpoint seen per (host, path, port) is the reference.
  void check_conflicts(const std::map<std::string, NetworkRule>& rules) {
    std::vector<EndpointRef> all;
    for (const auto& [name, rule] : rules) {
      for (size_t i = 0; i < rule.endpoints.size(); ++i) {
        all.push_back(
            EndpointRef{&rule.endpoints[i],
                        index_key(join_key(join_key("network_policies", name), "endpoints"), i)});
      }
    }
    std::stable_sort(all.begin(), all.end(), [](const EndpointRef& a, const EndpointRef& b) {
      return std::tie(a.endpoint->pos.line, a.endpoint->pos.column) <
             std::tie(b.endpoint->pos.line, b.endpoint->pos.column);
    });
    // (host, path) pairs are numbered once, so the per-port index holds no strings: a policy
    // with long paths and long port lists must not cost memory per (path x port).
    std::map<std::pair<std::string_view, std::optional<std::string_view>>, size_t> groups;
    std::map<std::pair<size_t, uint16_t>, const EndpointRef*> first;
    for (const EndpointRef& ref : all) {
      const Endpoint& ep = *ref.endpoint;
      if (!ep.host || ep.host->find('*') != std::string::npos) continue;  // globs never conflict
      std::optional<std::string_view> path;
      if (ep.path) path = *ep.path;
      const size_t group =
          groups.emplace(std::make_pair(std::string_view(*ep.host), path), groups.size())
              .first->second;
      for (const uint16_t port : ep.ports) {
        auto [it, inserted] = first.emplace(std::make_pair(group, port), &ref);
        if (inserted) continue;
        const Endpoint& other = *it->second->endpoint;
        if (other.protocol == ep.protocol && other.tls_skip == ep.tls_skip) continue;
        const std::string what = other.protocol != ep.protocol
                                     ? "a different protocol (" +
                                           std::string(protocol_name(other.protocol)) + " vs " +
                                           std::string(protocol_name(ep.protocol)) + ")"
                                     : "a different tls setting";
        report(ep.pos, ref.key,
               "conflicts with endpoint at " + std::to_string(other.pos.line) + ":" +
                   std::to_string(other.pos.column) + " (" + it->second->key + "): same host " +
                   *ep.host + ", port " + std::to_string(port) + " and path, but " + what);
        break;  // one report per endpoint
      }
    }
  }

  std::string file_;
  ParseOptions options_;
  std::vector<Diagnostic> diags_;
};

// toml++ says "Error while parsing ...": make it read like our own reasons (lower case, no
// trailing period) and keep control bytes from the input out of the one-line diagnostic.
std::string syntax_reason(std::string_view description) {
  std::string out;
  for (char c : description) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  if (!out.empty() && out[0] >= 'A' && out[0] <= 'Z')
    out[0] = static_cast<char>(out[0] - 'A' + 'a');
  while (!out.empty() && out.back() == '.') out.pop_back();
  if (out.empty()) out = "syntax error";
  return out;
}

// toml++ builds (and frees) one nested table per dotted-key part recursively, so a key like
// "a.a.a...." with tens of thousands of parts overflows the stack before any validation runs.
// No policy needs more than a handful of parts, so the text is pre-scanned: a run of dotted
// key parts longer than this is refused. Strings and comments are skipped the way TOML lexes
// them; inline tables and arrays are already bounded by toml++ (TOML_MAX_NESTED_VALUES).
constexpr size_t kMaxDottedKeyParts = 16;

struct NestingProblem {
  SourcePos pos;
};

std::optional<NestingProblem> find_deep_dotted_key(std::string_view text) {
  enum class State { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  State state = State::kCode;
  uint32_t line = 1;
  uint32_t column = 0;
  size_t dots = 0;  // dots in the current run of key-like text
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
    }
    // The character after a backslash is content, even a quote or a line break.
    const auto skip_escaped = [&] {
      if (++i >= text.size()) return;
      ++column;
      if (text[i] == '\n') {
        ++line;
        column = 0;
      }
    };
    const auto starts = [&](std::string_view token) {
      return text.substr(i, token.size()) == token;
    };
    switch (state) {
      case State::kCode:
        if (c == '.') {
          if (++dots >= kMaxDottedKeyParts) return NestingProblem{SourcePos{line, column}};
        } else if (starts("\"\"\"")) {
          state = State::kMultiBasic;
          i += 2;
          column += 2;
        } else if (starts("'''")) {
          state = State::kMultiLiteral;
          i += 2;
          column += 2;
        } else if (c == '"') {
          state = State::kBasic;
        } else if (c == '\'') {
          state = State::kLiteral;
        } else if (c == '#') {
          state = State::kComment;
          dots = 0;
        } else {
          const auto u = static_cast<unsigned char>(c);
          const bool key_like = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ' ' ||
                                c == '\t' || u >= 0x80;
          if (!key_like) dots = 0;
        }
        break;
      case State::kComment:
        if (c == '\n') state = State::kCode;
        break;
      case State::kBasic:
        if (c == '\\') {
          skip_escaped();
        } else if (c == '"' || c == '\n') {
          state = State::kCode;
        }
        break;
      case State::kLiteral:
        if (c == '\'' || c == '\n') state = State::kCode;
        break;
      case State::kMultiBasic:
      case State::kMultiLiteral: {
        const char quote_char = state == State::kMultiBasic ? '"' : '\'';
        if (state == State::kMultiBasic && c == '\\') {
          skip_escaped();
        } else if (c == quote_char) {
          size_t run = 1;
          while (i + run < text.size() && text[i + run] == quote_char) ++run;
          if (run >= 3) state = State::kCode;  // up to two extra quotes are content
          i += run - 1;
          column += static_cast<uint32_t>(run - 1);
        }
        break;
      }
    }
  }
  return std::nullopt;
}

ParseResult failure(std::string_view source, std::string reason) {
  ParseResult r;
  r.diagnostics.push_back(Diagnostic{std::string(source), SourcePos{}, "", std::move(reason)});
  return r;
}

}  // namespace

std::string Diagnostic::to_string() const {
  std::string out = file.empty() ? "<memory>" : file;
  if (pos.line != 0) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += reason;
  return out;
}

ParseResult parse_policy_string(std::string_view toml_text, std::string_view source_name,
                                ParseOptions options) {
  if (toml_text.size() > kMaxPolicyFileBytes) {
    return failure(source_name, "policy is " + std::to_string(toml_text.size()) +
                                    " bytes; the limit is " + std::to_string(kMaxPolicyFileBytes));
  }
  if (auto deep = find_deep_dotted_key(toml_text)) {
    ParseResult r;
    r.diagnostics.push_back(
        Diagnostic{std::string(source_name), deep->pos, "",
                   "dotted key has more than " + std::to_string(kMaxDottedKeyParts) + " parts"});
    return r;
  }
  try {
    toml::table root;
    try {
      root = toml::parse(toml_text, std::string(source_name));
    } catch (const toml::parse_error& e) {
      ParseResult r;
      r.diagnostics.push_back(Diagnostic{std::string(source_name), pos_of(e.source()), "",
                                         syntax_reason(e.description())});
      return r;
    }
    Validator validator{std::string(source_name), options};
    Policy policy = validator.validate(root);
    ParseResult r;
    r.diagnostics = validator.take_diagnostics();
    if (r.diagnostics.empty()) {
      r.policy = std::make_shared<const Policy>(std::move(policy));
      return r;
    }
    std::stable_sort(
        r.diagnostics.begin(), r.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
          return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
        });
    if (r.diagnostics.size() > kMaxDiagnostics) {
      const size_t dropped = r.diagnostics.size() - kMaxDiagnostics;
      r.diagnostics.resize(kMaxDiagnostics);
      r.diagnostics.push_back(Diagnostic{std::string(source_name), SourcePos{}, "",
                                         std::to_string(dropped) + " more problems not shown"});
    }
    return r;
  } catch (const std::exception& e) {
    // Only allocation failure can get here; a policy is never half-accepted.
    return failure(source_name, std::string("internal error while validating: ") + e.what());
  }
}

ParseResult parse_policy_file(const std::string& path, ParseOptions options) {
  // O_NONBLOCK: a FIFO at the path must not hang the caller; it is refused below anyway.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    return failure(path, "cannot open: " + std::generic_category().message(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return failure(path, "cannot stat: " + std::generic_category().message(errno));
  }
  if (!S_ISREG(st.st_mode)) return failure(path, "not a regular file");
  const auto too_large = [&path](uint64_t size) {
    return failure(path, "file is " + std::to_string(size) + " bytes; the limit is " +
                             std::to_string(kMaxPolicyFileBytes));
  };
  if (static_cast<uint64_t>(st.st_size) > kMaxPolicyFileBytes) {
    return too_large(static_cast<uint64_t>(st.st_size));
  }
  // Sized by fstat, plus one byte to see EOF; a file that grew since then gets more room, up to
  // one byte beyond the limit, which tells it from one that fits. (A buffer of the whole limit
  // cost every sandbox start a megabyte of zeroed pages: a third of its policy load.)
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() > kMaxPolicyFileBytes) break;
      text.resize(std::min<size_t>(text.size() * 2, kMaxPolicyFileBytes + 1));
    }
    const ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failure(path, "cannot read: " + std::generic_category().message(errno));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > kMaxPolicyFileBytes) return too_large(used);
  text.resize(used);
  return parse_policy_string(text, path, options);
}

Resources builtin_resource_defaults() {
  Resources r;
  r.memory_max = uint64_t{4} << 30;
  r.cpu_max = CpuMax{200};
  r.pids_max = 4096;
  r.tmp_size = uint64_t{1} << 30;
  r.shm_size = uint64_t{256} << 20;
  return r;
}

Resources with_defaults(const Resources& policy, const Resources& defaults) {
  Resources r = policy;
  if (!r.memory_max) r.memory_max = defaults.memory_max;
  if (!r.cpu_max) r.cpu_max = defaults.cpu_max;
  if (!r.pids_max) r.pids_max = defaults.pids_max;
  if (!r.tmp_size) r.tmp_size = defaults.tmp_size;
  if (!r.shm_size) r.shm_size = defaults.shm_size;
  return r;
}

std::optional<std::string> set_resource(Resources& out, std::string_view key,
                                        std::string_view value) {
  uint64_t n = 0;
  if (key == "memory_max" || key == "tmp_size" || key == "shm_size") {
    if (auto why = bytes_value(key, value, n)) return why;
    (key == "memory_max" ? out.memory_max : key == "tmp_size" ? out.tmp_size : out.shm_size) = n;
    return std::nullopt;
  }
  if (key == "cpu_max") {
    CpuMax cpu;
    if (auto why = cpu_value(value, cpu)) return why;
    out.cpu_max = cpu;
    return std::nullopt;
  }
  if (key == "pids_max") {
    if (value == "max") {
      out.pids_max = kUnlimited;
      return std::nullopt;
    }
    const bool digits = !value.empty() && value.size() <= 9 &&
                        std::all_of(value.begin(), value.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) return "pids_max must be a number or \"max\"";
    if (auto why = pids_value(std::stoll(std::string(value)), n)) return why;
    out.pids_max = n;
    return std::nullopt;
  }
  return "unknown resource " + quote(key) +
         " (expected memory_max, cpu_max, pids_max, tmp_size or shm_size)";
}

namespace {

std::string bytes_text(uint64_t n) { return n == kUnlimited ? "max" : std::to_string(n); }
std::string cpu_text(CpuMax c) {
  return c.percent == kUnlimitedCpu ? "max" : std::to_string(c.percent) + "%";
}

}  // namespace

std::vector<std::string> resource_assignments(const Resources& r) {
  std::vector<std::string> out;
  if (r.memory_max) out.push_back("memory_max=" + bytes_text(*r.memory_max));
  if (r.cpu_max) out.push_back("cpu_max=" + cpu_text(*r.cpu_max));
  if (r.pids_max) out.push_back("pids_max=" + bytes_text(*r.pids_max));
  if (r.tmp_size) out.push_back("tmp_size=" + bytes_text(*r.tmp_size));
  if (r.shm_size) out.push_back("shm_size=" + bytes_text(*r.shm_size));
  return out;
}

std::vector<std::string> exceeded_caps(const Resources& effective, const Resources& caps) {
  std::vector<std::string> out;
  // Unset and "max" both read as unlimited.
  const auto check = [&](const char* key, const std::optional<uint64_t>& asked,
                         const std::optional<uint64_t>& cap) {
    if (!cap || *cap == kUnlimited) return;
    const uint64_t value = asked.value_or(kUnlimited);
    if (value > *cap)
      out.push_back(std::string("resources.") + key + " " + bytes_text(value) +
                    " is above this host's limit for non-root callers (" + bytes_text(*cap) + ")");
  };
  check("memory_max", effective.memory_max, caps.memory_max);
  if (caps.cpu_max && caps.cpu_max->percent != kUnlimitedCpu) {
    const CpuMax asked = effective.cpu_max.value_or(CpuMax{kUnlimitedCpu});
    if (asked.percent == kUnlimitedCpu || asked.percent > caps.cpu_max->percent)
      out.push_back("resources.cpu_max " + cpu_text(asked) +
                    " is above this host's limit for non-root callers (" +
                    cpu_text(*caps.cpu_max) + ")");
  }
  check("pids_max", effective.pids_max, caps.pids_max);
  check("tmp_size", effective.tmp_size, caps.tmp_size);
  check("shm_size", effective.shm_size, caps.shm_size);
  return out;
}

namespace {

std::string list_text(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i == 0 ? "" : ", ") + quote(v[i]);
  return out + "]";
}

template <typename T, typename Show>
void differ(std::vector<std::string>& out, const char* key, const T& a, const T& b, Show show) {
  if (!(a == b)) out.push_back(std::string(key) + ": " + show(a) + " -> " + show(b));
}

std::string optional_bytes(const std::optional<uint64_t>& v) {
  return v ? bytes_text(*v) : std::string("unset");
}

}  // namespace

std::vector<std::string> static_differences(const Policy& a, const Policy& b) {
  std::vector<std::string> out;
  const auto boolean = [](bool v) { return std::string(v ? "true" : "false"); };
  const auto number = [](uint32_t v) { return std::to_string(v); };
  differ(out, "filesystem_policy.include_workdir", a.filesystem.include_workdir,
         b.filesystem.include_workdir, boolean);
  differ(out, "filesystem_policy.read_only", a.filesystem.read_only, b.filesystem.read_only,
         list_text);
  differ(out, "filesystem_policy.read_write", a.filesystem.read_write, b.filesystem.read_write,
         list_text);
  differ(out, "landlock.compatibility", a.landlock, b.landlock, [](LandlockCompatibility c) {
    return std::string(c == LandlockCompatibility::kBestEffort ? "\"best_effort\""
                                                               : "\"hard_requirement\"");
  });
  differ(out, "process.run_as_user", a.process.run_as_user, b.process.run_as_user, number);
  differ(out, "process.run_as_group", a.process.run_as_group, b.process.run_as_group, number);
  differ(out, "resources.memory_max", a.resources.memory_max, b.resources.memory_max,
         optional_bytes);
  differ(out, "resources.cpu_max", a.resources.cpu_max, b.resources.cpu_max,
         [](const std::optional<CpuMax>& c) { return c ? cpu_text(*c) : std::string("unset"); });
  differ(out, "resources.pids_max", a.resources.pids_max, b.resources.pids_max, optional_bytes);
  differ(out, "resources.tmp_size", a.resources.tmp_size, b.resources.tmp_size, optional_bytes);
  differ(out, "resources.shm_size", a.resources.shm_size, b.resources.shm_size, optional_bytes);
  return out;
}

std::string with_static_sections_of(const std::string& next_text, const std::string& running_text) {
  std::string out = next_text;
  try {
    const toml::table next = toml::parse(next_text);
    const toml::table running = toml::parse(running_text);
    for (const char* section : {"filesystem_policy", "landlock", "process", "resources"}) {
      if (next.contains(section)) continue;
      const toml::table* kept = running.get_as<toml::table>(section);
      if (kept == nullptr) continue;
      toml::table wrapper;
      wrapper.insert(section, *kept);
      std::ostringstream text;
      text << toml::toml_formatter(wrapper);
      if (!out.empty() && out.back() != '\n') out += '\n';
      out += "\n# From the running revision (this file left it out):\n" + text.str() + "\n";
    }
  } catch (const std::exception&) {
    return next_text;  // not both valid: nothing to take; validation says why
  }
  return out;
}

std::shared_ptr<const Policy> default_policy() {
  static const std::shared_ptr<const Policy> the_default = [] {
    auto p = std::make_shared<Policy>();
    p->version = 1;
    p->filesystem.include_workdir = true;
    p->filesystem.read_only = {"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"};
    p->landlock = LandlockCompatibility::kBestEffort;
    p->source = "<default>";
    return std::shared_ptr<const Policy>(std::move(p));
  }();
  return the_default;
}

}  // namespace openshell::policy
