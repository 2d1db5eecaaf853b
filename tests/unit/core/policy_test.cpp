#include "core/policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace openshell::policy;  // NOLINT(google-build-using-namespace)

namespace {

// The language's grammar, L7 included (this version refuses L7 policies: see the test of that).
ParseResult parse(const std::string& text) {
  return parse_policy_string(text, "t.toml", ParseOptions{.l7 = true});
}

std::string dump(const ParseResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) out += d.to_string() + "\n";
  return out;
}

// The policy must fail with exactly one diagnostic, at line:col, for `key`, whose reason
// contains `reason`.
void expect_one(const std::string& text, uint32_t line, uint32_t col, const std::string& key,
                const std::string& reason) {
  const ParseResult r = parse(text);
  INFO("policy:\n" << text << "\ndiagnostics:\n" << dump(r));
  CHECK_FALSE(r.ok());
  CHECK(r.policy == nullptr);
  REQUIRE(r.diagnostics.size() == 1);
  const Diagnostic& d = r.diagnostics[0];
  CHECK(d.file == "t.toml");
  CHECK(d.pos.line == line);
  CHECK(d.pos.column == col);
  CHECK(d.key == key);
  CHECK_THAT(d.reason, Catch::Contains(reason));
}

std::shared_ptr<const Policy> expect_ok(const std::string& text) {
  const ParseResult r = parse(text);
  INFO("policy:\n" << text << "\ndiagnostics:\n" << dump(r));
  REQUIRE(r.diagnostics.empty());
  REQUIRE(r.ok());
  return r.policy;
}

// One endpoint under [network_policies.api]; the table header is on line 3 and `body` starts on
// line 4.
std::string ep_doc(const std::string& body) {
  return "version = 1\n"
         "[network_policies.api]\n"
         "[[network_policies.api.endpoints]]\n" +
         body;
}

// The same with host = "api.example.com" on line 4; `fields` start on line 5.
std::string endpoint(const std::string& fields) {
  return ep_doc("host = \"api.example.com\"\n" + fields);
}

const std::string ep_key = "network_policies.api.endpoints[0]";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Positive cases

TEST_CASE("a minimal policy gets the documented defaults", "[policy]") {
  const auto p = expect_ok("version = 1\n");
  CHECK(p->version == 1);
  CHECK(p->source == "t.toml");
  // No [filesystem_policy] section: the default policy's filesystem.
  CHECK(p->filesystem.include_workdir);
  CHECK(p->filesystem.read_only == default_policy()->filesystem.read_only);
  CHECK(p->filesystem.read_write.empty());
  CHECK(p->landlock == LandlockCompatibility::kBestEffort);
  CHECK(p->process.run_as_user == kSandboxUid);
  CHECK(p->process.run_as_group == kSandboxGid);
  CHECK_FALSE(p->resources.memory_max);
  CHECK_FALSE(p->resources.cpu_max);
  CHECK_FALSE(p->resources.pids_max);
  CHECK(p->network_policies.empty());
}

TEST_CASE("a present [filesystem_policy] means exactly what it lists", "[policy]") {
  const auto p = expect_ok("version = 1\n[filesystem_policy]\ninclude_workdir = false\n");
  CHECK_FALSE(p->filesystem.include_workdir);
  CHECK(p->filesystem.read_only.empty());
  CHECK(p->filesystem.read_write.empty());
}

TEST_CASE("default_policy", "[policy]") {
  const auto p = default_policy();
  REQUIRE(p != nullptr);
  CHECK(p->version == 1);
  CHECK(p->filesystem.read_only ==
        std::vector<std::string>{"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"});
  CHECK(p->filesystem.read_write.empty());
  CHECK(p->filesystem.include_workdir);
  CHECK(p->landlock == LandlockCompatibility::kBestEffort);
  CHECK(p->network_policies.empty());
  CHECK(p->process.run_as_user == kSandboxUid);
}

TEST_CASE("the full schema round-trips into the model", "[policy]") {
  const auto p = expect_ok(R"(version = 1

[filesystem_policy]
include_workdir = false
read_only  = ["/usr", "/lib//x86_64/", "/etc/./ssl", "/usr"]
read_write = ["/tmp", "/var/cache/"]

[landlock]
compatibility = "hard_requirement"

[process]
run_as_user = 1234
run_as_group = "sandbox"

[resources]
memory_max = "4G"
cpu_max = "200%"
pids_max = 2048

[network_policies.github_api]
name = "GitHub API"
binaries = [{ path = "/usr/bin/gh" }, { path = "/usr/lib//git-core/*" }]

[[network_policies.github_api.endpoints]]
host = "API.GitHub.com."
port = 443
protocol = "rest"
tls = "terminate"
enforcement = "audit"
access = "read-only"
deny_rules = [{ method = "delete", path = "/**" }]
allow_encoded_slash = true

[[network_policies.github_api.endpoints]]
host = "**.githubusercontent.com"
port = 80
ports = [8443, 443, 443]
path = "/graphql"
protocol = "graphql"
rules = [
  { allow = { method = "POST", path = "/graphql", query = { v = "1.*", mode = { any = ["a", "b*"] } } } },
  { allow = { path = "/health" } },
]
request_body_credential_rewrite = true

[network_policies.internal]
[[network_policies.internal.endpoints]]
ports = [5432]
allowed_ips = ["10.0.0.0/8", "fd00::/8", "192.168.1.5"]
tls = "skip"

[[network_policies.internal.endpoints]]
host = "db.internal.example"
port = 5433
protocol = "tcp"
)");
  CHECK_FALSE(p->filesystem.include_workdir);
  CHECK(p->filesystem.read_only == std::vector<std::string>{"/usr", "/lib/x86_64", "/etc/ssl"});
  CHECK(p->filesystem.read_write == std::vector<std::string>{"/tmp", "/var/cache"});
  CHECK(p->landlock == LandlockCompatibility::kHardRequirement);
  CHECK(p->process.run_as_user == 1234);
  CHECK(p->process.run_as_group == kSandboxGid);
  CHECK(p->resources.memory_max == uint64_t{4} << 30);
  REQUIRE(p->resources.cpu_max);
  CHECK(p->resources.cpu_max->percent == 200);
  CHECK(p->resources.pids_max == 2048);

  REQUIRE(p->network_policies.size() == 2);
  const NetworkRule& gh = p->network_policies.at("github_api");
  CHECK(gh.name == "github_api");
  CHECK(gh.pos.line == 20);
  REQUIRE(gh.binaries.size() == 2);
  CHECK(gh.binaries[0].path == "/usr/bin/gh");
  CHECK(gh.binaries[1].path == "/usr/lib/git-core/*");
  CHECK(gh.binaries[0].pos.line == 22);
  CHECK(gh.binaries[0].pos.column == 13);
  REQUIRE(gh.endpoints.size() == 2);

  const Endpoint& e0 = gh.endpoints[0];
  CHECK(e0.pos.line == 24);
  CHECK(e0.pos.column == 1);
  CHECK(e0.host == "api.github.com");
  CHECK(e0.ports == std::vector<uint16_t>{443});
  CHECK_FALSE(e0.path);
  CHECK(e0.protocol == Protocol::kRest);
  CHECK_FALSE(e0.tls_skip);
  CHECK(e0.enforcement == Enforcement::kAudit);
  CHECK(e0.access == Access::kReadOnly);
  CHECK(e0.rules.empty());
  REQUIRE(e0.deny_rules.size() == 1);
  CHECK(e0.deny_rules[0].method == "DELETE");
  CHECK(e0.deny_rules[0].path == "/**");
  CHECK(e0.deny_rules[0].query.empty());
  CHECK(e0.allow_encoded_slash);
  CHECK_FALSE(e0.request_body_credential_rewrite);

  const Endpoint& e1 = gh.endpoints[1];
  CHECK(e1.host == "**.githubusercontent.com");
  CHECK(e1.ports == std::vector<uint16_t>{443, 8443});  // `ports` wins over `port`
  CHECK(e1.path == "/graphql");
  CHECK(e1.protocol == Protocol::kGraphql);
  CHECK(e1.enforcement == Enforcement::kEnforce);
  CHECK_FALSE(e1.access);
  REQUIRE(e1.rules.size() == 2);
  CHECK(e1.rules[0].method == "POST");
  CHECK(e1.rules[0].path == "/graphql");
  CHECK(e1.rules[0].pos.line == 41);
  CHECK(e1.rules[0].pos.column == 3);
  REQUIRE(e1.rules[0].query.size() == 2);
  CHECK(e1.rules[0].query.at("v").any == std::vector<std::string>{"1.*"});
  CHECK(e1.rules[0].query.at("mode").any == std::vector<std::string>{"a", "b*"});
  CHECK(e1.rules[1].method == "*");
  CHECK(e1.rules[1].path == "/health");
  CHECK(e1.request_body_credential_rewrite);

  const NetworkRule& internal = p->network_policies.at("internal");
  REQUIRE(internal.endpoints.size() == 2);
  const Endpoint& hostless = internal.endpoints[0];
  CHECK_FALSE(hostless.host);
  CHECK(hostless.tls_skip);
  CHECK(hostless.protocol == Protocol::kL4);
  REQUIRE(hostless.allowed_ips.size() == 3);
  CHECK(to_string(hostless.allowed_ips[0]) == "10.0.0.0/8");
  CHECK(to_string(hostless.allowed_ips[1]) == "fd00::/8");
  CHECK(to_string(hostless.allowed_ips[2]) == "192.168.1.5/32");
  CHECK(internal.endpoints[1].protocol == Protocol::kTcp);
  CHECK(internal.binaries.empty());
}

TEST_CASE("memory sizes in bytes and powers of 1024", "[policy]") {
  struct Case {
    const char* value;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"\"4G\"", uint64_t{4294967296}}, Case{"\"4Gi\"", uint64_t{4} << 30},
        Case{"\"512M\"", uint64_t{512} << 20}, Case{"\"1K\"", 1024}, Case{"\"1Ki\"", 1024},
        Case{"\"2T\"", uint64_t{2} << 40}, Case{"\"1048576\"", 1048576},
        Case{"1073741824", 1073741824}, Case{"\"16777215T\"", uint64_t{16777215} << 40}}) {
    INFO(c.value);
    const auto p = expect_ok(std::string("version = 1\n[resources]\nmemory_max = ") + c.value);
    CHECK(p->resources.memory_max == c.bytes);
  }
  const auto unlimited = expect_ok(
      "version = 1\n[resources]\nmemory_max = \"max\"\ncpu_max = \"max\"\npids_max = \"max\"\n");
  // "max" is an explicit "none", kept apart from a limit left out (which takes the defaults).
  CHECK(unlimited->resources.memory_max == kUnlimited);
  CHECK(unlimited->resources.cpu_max == CpuMax{kUnlimitedCpu});
  CHECK(unlimited->resources.pids_max == kUnlimited);
  CHECK_FALSE(unlimited->resources.tmp_size);
  const auto sized = expect_ok(
      "version = 1\n[resources]\ntmp_size = \"512M\"\nshm_size = 65536\n");
  CHECK(sized->resources.tmp_size == uint64_t{512} << 20);
  CHECK(sized->resources.shm_size == 65536U);
  CHECK_FALSE(sized->resources.memory_max);
  expect_one("version = 1\n[resources]\ntmp_size = 0\n", 3, 12, "resources.tmp_size",
             "tmp_size must be greater than zero");
  expect_one("version = 1\n[resources]\nshm_size = \"lots\"\n", 3, 12, "resources.shm_size",
             "malformed size");
}

// Issue 13.B: every sandbox has limits; a policy's own win, "max" stays explicit, and the
// daemon's caps on non-root callers see through both.
TEST_CASE("resource defaults fill what a policy leaves out; caps name each excess",
          "[policy][resources]") {
  const Resources builtin = builtin_resource_defaults();
  CHECK(builtin.memory_max == uint64_t{4} << 30);
  CHECK(builtin.cpu_max == CpuMax{200});
  CHECK(builtin.pids_max == 4096U);
  CHECK(builtin.tmp_size == uint64_t{1} << 30);
  CHECK(builtin.shm_size == uint64_t{256} << 20);

  Resources own;
  own.memory_max = uint64_t{1} << 30;
  own.pids_max = kUnlimited;
  const Resources effective = with_defaults(own, builtin);
  CHECK(effective.memory_max == uint64_t{1} << 30);
  CHECK(effective.pids_max == kUnlimited);
  CHECK(effective.cpu_max == builtin.cpu_max);
  CHECK(effective.tmp_size == builtin.tmp_size);

  Resources set;
  CHECK_FALSE(set_resource(set, "memory_max", "2G"));
  CHECK_FALSE(set_resource(set, "cpu_max", "max"));
  CHECK_FALSE(set_resource(set, "pids_max", "100"));
  CHECK_FALSE(set_resource(set, "tmp_size", "max"));
  CHECK(set.memory_max == uint64_t{2} << 30);
  CHECK(set.cpu_max == CpuMax{kUnlimitedCpu});
  CHECK(set.pids_max == 100U);
  CHECK(set.tmp_size == kUnlimited);
  CHECK(set_resource(set, "pids_max", "0").has_value());
  CHECK(set_resource(set, "pids_max", "-1").has_value());
  CHECK(set_resource(set, "memory_max", "0").has_value());
  CHECK(set_resource(set, "cpu_max", "2").has_value());
  CHECK(set_resource(set, "swap_max", "1G").has_value());
  // Round trip through a command line.
  Resources again;
  for (const auto& a : resource_assignments(set)) {
    const auto eq = a.find('=');
    CHECK_FALSE(set_resource(again, a.substr(0, eq), a.substr(eq + 1)));
  }
  CHECK(again == set);

  Resources caps;
  caps.memory_max = uint64_t{2} << 30;
  caps.cpu_max = CpuMax{100};
  caps.pids_max = 1000;
  CHECK(exceeded_caps(with_defaults({}, builtin), {}).empty());  // no caps: nothing exceeds
  const auto over = exceeded_caps(with_defaults(own, builtin), caps);
  // memory 1G fits; cpu 200% > 100%; pids "max" > 1000; the sizes have no cap.
  REQUIRE(over.size() == 2);
  CHECK_THAT(over[0], Catch::Contains("resources.cpu_max 200%") && Catch::Contains("(100%)"));
  CHECK_THAT(over[1], Catch::Contains("resources.pids_max max") && Catch::Contains("(1000)"));
  Resources within;
  within.memory_max = uint64_t{1} << 30;  // the default 4G would exceed the 2G cap
  within.cpu_max = CpuMax{50};
  within.pids_max = 10;
  CHECK(exceeded_caps(with_defaults(within, builtin), caps).empty());
}

TEST_CASE("identities: sandbox and numeric ids", "[policy]") {
  const auto p =
      expect_ok("version = 1\n[process]\nrun_as_user = \"4242\"\nrun_as_group = 4294967294\n");
  CHECK(p->process.run_as_user == 4242);
  CHECK(p->process.run_as_group == 4294967294U);
}

TEST_CASE("hostless endpoints, host-only endpoints and tcp", "[policy]") {
  expect_ok(endpoint("port = 443\n"));
  expect_ok(endpoint("port = 443\nprotocol = \"tcp\"\n"));
  expect_ok(endpoint("port = 443\nprotocol = \"websocket\"\naccess = \"read-write\"\n"));
  const auto mcp = expect_ok(endpoint(
      "port = 443\nprotocol = \"mcp\"\nrules = [{ allow = { method = \"tools/call\" } }]\n"));
  // MCP and JSON-RPC method names are case-sensitive and keep their spelling.
  CHECK(mcp->network_policies.at("api").endpoints[0].rules[0].method == "tools/call");
  expect_one(
      endpoint("port = 443\nprotocol = \"json-rpc\"\nrules = [{ allow = { method = \"a b\" } "
               "}]\n"),
      7, 31, ep_key + ".rules[0].allow.method", "malformed method");
  expect_ok(ep_doc("allowed_ips = [\"10.1.0.0/16\"]\nport = 5432\n"));
}

TEST_CASE("endpoints that differ only where no conflict arises are fine", "[policy]") {
  // Same host and port, different paths; and different ports with different protocols.
  expect_ok(R"(version = 1
[network_policies.a]
[[network_policies.a.endpoints]]
host = "api.example.com"
port = 443
path = "/graphql"
protocol = "graphql"
access = "read-only"
[[network_policies.a.endpoints]]
host = "api.example.com"
port = 443
path = "/repos/**"
protocol = "rest"
access = "read-only"
[network_policies.b]
[[network_policies.b.endpoints]]
host = "api.example.com"
port = 8443
[[network_policies.b.endpoints]]
host = "*.example.com"
port = 443
)");
}

TEST_CASE("Diagnostic::to_string", "[policy]") {
  const Diagnostic d{"p.toml", SourcePos{3, 7}, "process.run_as_user", "root is not allowed"};
  CHECK(d.to_string() == "p.toml:3:7: process.run_as_user: root is not allowed");
  const Diagnostic nokey{"p.toml", SourcePos{2, 1}, "", "syntax"};
  CHECK(nokey.to_string() == "p.toml:2:1: syntax");
  const Diagnostic nopos{"p.toml", SourcePos{}, "", "cannot open: No such file or directory"};
  CHECK(nopos.to_string() == "p.toml: cannot open: No such file or directory");
}

// ---------------------------------------------------------------------------------------------
// Rejections: one test per class, each pinning line, column, key and reason.

TEST_CASE("reject: TOML syntax error", "[policy][reject]") {
  expect_one("version = 1\n[process\nrun_as_user = 1\n", 2, 9, "",
             "error while parsing table header");
  const ParseResult r = parse("version = 1\nx = = 2\n");
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].pos.line == 2);
  CHECK_FALSE(r.diagnostics[0].reason.empty());
}

TEST_CASE("reject: version missing or not 1", "[policy][reject]") {
  expect_one("[process]\nrun_as_user = 1\n", 1, 1, "version", "missing required key");
  expect_one("version = 2\n", 1, 11, "version", "unsupported version 2");
  expect_one("version = \"1\"\n", 1, 11, "version", "expected an integer, found a string");
}

TEST_CASE("reject: unknown keys at every level", "[policy][reject]") {
  expect_one("version = 1\ncolour = \"blue\"\n", 2, 1, "colour", "unknown key \"colour\"");
  expect_one("version = 1\n[filesystem_policy]\nread_olny = []\n", 3, 1,
             "filesystem_policy.read_olny", "did you mean \"read_only\"?");
  expect_one("version = 1\n[landlock]\nmode = \"x\"\n", 3, 1, "landlock.mode", "unknown key");
  expect_one("version = 1\n[process]\nuser = 1\n", 3, 1, "process.user", "unknown key");
  expect_one("version = 1\n[resources]\nmem = 1\n", 3, 1, "resources.mem", "unknown key");
  expect_one("version = 1\n[network_middlewares.x]\n", 2, 2, "network_middlewares", "unknown key");
  expect_one("version = 1\n[network_policies.api]\nbinary = []\n", 3, 1,
             "network_policies.api.binary", "did you mean \"binaries\"?");
  expect_one(
      "version = 1\n[network_policies.api]\nbinaries = [{ path = \"/usr/bin/gh\", sha256 = \"ab\" "
      "}]\n",
      3, 37, "network_policies.api.binaries[0].sha256", "unknown key \"sha256\"");
  expect_one(endpoint("port = 443\nprotocl = \"rest\"\n"), 6, 1, ep_key + ".protocl",
             "did you mean \"protocol\"?");
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\nrules = [{ allow = { method = \"GET\" }, "
                      "deny = {} }]\n"),
             7, 40, ep_key + ".rules[0].deny", "unknown key");
  expect_one(
      endpoint("port = 443\nprotocol = \"rest\"\nrules = [{ allow = { verb = \"GET\" } }]\n"), 7,
      22, ep_key + ".rules[0].allow.verb", "unknown key");
  expect_one(endpoint("port = 443\n\"odd\\nkey\" = 1\n"), 6, 1, ep_key + ".\"odd\\u000akey\"",
             "unknown key \"odd\\u000akey\"");
}

TEST_CASE("reject: wrong types", "[policy][reject]") {
  expect_one("version = 1\nfilesystem_policy = 3\n", 2, 21, "filesystem_policy",
             "expected a table, found an integer");
  expect_one("version = 1\n[filesystem_policy]\ninclude_workdir = \"yes\"\n", 3, 19,
             "filesystem_policy.include_workdir", "expected a boolean, found a string");
  expect_one("version = 1\n[filesystem_policy]\nread_only = \"/usr\"\n", 3, 13,
             "filesystem_policy.read_only", "expected an array, found a string");
  expect_one("version = 1\n[filesystem_policy]\nread_only = [\"/usr\", 7]\n", 3, 22,
             "filesystem_policy.read_only[1]", "expected a string, found an integer");
  expect_one(endpoint("port = \"443\"\n"), 5, 8, ep_key + ".port",
             "expected an integer, found a string");
  expect_one(endpoint("port = 443.0\n"), 5, 8, ep_key + ".port",
             "expected an integer, found a float");
  expect_one(endpoint("port = 443\nallow_encoded_slash = 1\n"), 6, 23,
             ep_key + ".allow_encoded_slash", "expected a boolean, found an integer");
  expect_one("version = 1\n[network_policies.api]\nbinaries = [\"/usr/bin/gh\"]\n", 3, 13,
             "network_policies.api.binaries[0]", "expected a table, found a string");
  expect_one("version = 1\n[network_policies]\napi = 1\n", 3, 7, "network_policies.api",
             "expected a table, found an integer");
  expect_one("version = 1\n[process]\nrun_as_user = true\n", 3, 15, "process.run_as_user",
             "expected a string or an integer, found a boolean");
  expect_one("version = 1\n[resources]\ncpu_max = 2\n", 3, 11, "resources.cpu_max",
             "expected a string, found an integer");
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\naccess = \"full\"\n"
                      "deny_rules = [{ query = { q = 1 } }]\n"),
             8, 31, ep_key + ".deny_rules[0].query.q", "expected a string or a table");
}

TEST_CASE("reject: relative filesystem and binary paths", "[policy][reject]") {
  expect_one("version = 1\n[filesystem_policy]\nread_only = [\"/usr\", \"usr/lib\"]\n", 3, 22,
             "filesystem_policy.read_only[1]", "relative path \"usr/lib\"");
  expect_one("version = 1\n[filesystem_policy]\nread_write = [\"\"]\n", 3, 15,
             "filesystem_policy.read_write[0]", "path is empty");
  expect_one("version = 1\n[network_policies.api]\nbinaries = [{ path = \"bin/gh\" }]\n", 3, 22,
             "network_policies.api.binaries[0].path", "relative path");
}

TEST_CASE("reject: '..' components", "[policy][reject]") {
  expect_one("version = 1\n[filesystem_policy]\nread_write = [\"/tmp/../etc\"]\n", 3, 15,
             "filesystem_policy.read_write[0]", "contains a '..' component");
  expect_one("version = 1\n[network_policies.api]\nbinaries = [{ path = \"/usr/bin/..\" }]\n", 3,
             22, "network_policies.api.binaries[0].path", "'..'");
  // ".." inside a name is just a name.
  expect_ok("version = 1\n[filesystem_policy]\nread_only = [\"/opt/a..b\"]\n");
}

TEST_CASE("reject: read-write /", "[policy][reject]") {
  expect_one("version = 1\n[filesystem_policy]\nread_write = [\"/tmp\", \"//./\"]\n", 3, 23,
             "filesystem_policy.read_write[1]", "read-write / would expose the whole host");
  expect_ok("version = 1\n[filesystem_policy]\nread_only = [\"/\"]\n");
}

TEST_CASE("reject: a path both read-only and read-write", "[policy][reject]") {
  expect_one(
      "version = 1\n[filesystem_policy]\nread_only = [\"/srv/data\"]\n"
      "read_write = [\"/srv/data/\"]\n",
      4, 15, "filesystem_policy.read_write[0]",
      "listed in both read_only and read_write (other at 3:14)");
}

TEST_CASE("reject: NUL and over-long paths", "[policy][reject]") {
  expect_one("version = 1\n[filesystem_policy]\nread_only = [\"/a\\u0000b\"]\n", 3, 14,
             "filesystem_policy.read_only[0]", "NUL");
  expect_one("version = 1\n[filesystem_policy]\nread_only = [\"/" +
                 std::string(kMaxPathLength, 'a') + "\"]\n",
             3, 14, "filesystem_policy.read_only[0]", "longer than 4096");
}

TEST_CASE("reject: root identities", "[policy][reject]") {
  expect_one("version = 1\n[process]\nrun_as_user = 0\n", 3, 15, "process.run_as_user",
             "root (id 0) is not allowed");
  expect_one("version = 1\n[process]\nrun_as_group = \"root\"\n", 3, 16, "process.run_as_group",
             "root is not allowed");
  expect_one("version = 1\n[process]\nrun_as_user = \"0\"\n", 3, 15, "process.run_as_user",
             "root (id 0) is not allowed");
  expect_one("version = 1\n[process]\nrun_as_user = \"nobody\"\n", 3, 15, "process.run_as_user",
             "unknown identity \"nobody\"");
  expect_one("version = 1\n[process]\nrun_as_user = 4294967295\n", 3, 15, "process.run_as_user",
             "out of range");
  expect_one("version = 1\n[process]\nrun_as_user = -5\n", 3, 15, "process.run_as_user",
             "out of range");
}

TEST_CASE("reject: bad host globs", "[policy][reject]") {
  expect_one(ep_doc("host = \"*\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "at least two fixed labels");
  expect_one(ep_doc("host = \"**\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "at least two fixed labels");
  expect_one(ep_doc("host = \"*.com\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "bad host \"*.com\": a wildcard needs at least two fixed labels");
  expect_one(ep_doc("host = \"a.b*c.example.com\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "partial wildcard label");
  expect_one(ep_doc("host = \"a.**.example.com\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "'**' is only allowed as the whole first label");
  expect_one(ep_doc("host = \"api..example.com\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "empty label");
  expect_one(ep_doc("host = \"https://api.example.com\"\nport = 443\n"), 4, 8, ep_key + ".host",
             "':'");
}

TEST_CASE("reject: host missing without allowed_ips", "[policy][reject]") {
  expect_one(ep_doc("port = 443\n"), 3, 1, ep_key + ".host", "endpoint has no host");
  expect_one(ep_doc("port = 443\nallowed_ips = []\n"), 3, 1, ep_key + ".host",
             "only an endpoint with allowed_ips may omit it");
  expect_one(ep_doc("port = 5432\nallowed_ips = [\"10.0.0.0/8\"]\nprotocol = \"tcp\"\n"), 3, 1,
             ep_key + ".host", "protocol tcp needs a host");
}

TEST_CASE("reject: no port, or a bad one", "[policy][reject]") {
  expect_one(endpoint("protocol = \"rest\"\naccess = \"full\"\n"), 3, 1, ep_key + ".port",
             "endpoint has no port");
  expect_one(endpoint("port = 0\n"), 5, 8, ep_key + ".port", "port 0 is out of range");
  expect_one(endpoint("port = 65536\n"), 5, 8, ep_key + ".port", "out of range");
  expect_one(endpoint("ports = []\n"), 5, 9, ep_key + ".ports", "ports is empty");
  expect_one(endpoint("ports = [1, 70000]\n"), 5, 13, ep_key + ".ports[1]", "out of range");
  expect_one(endpoint("port = \"x\"\nports = [443]\n"), 5, 8, ep_key + ".port",
             "expected an integer");
}

TEST_CASE("reject: access together with rules", "[policy][reject]") {
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\naccess = \"full\"\n"
                      "rules = [{ allow = { method = \"GET\" } }]\n"),
             7, 10, ep_key + ".access", "access and rules are exclusive");
}

TEST_CASE("reject: empty rules and deny_rules", "[policy][reject]") {
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\nrules = []\n"), 7, 9, ep_key + ".rules",
             "rules is empty");
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\naccess = \"full\"\ndeny_rules = []\n"), 8,
             14, ep_key + ".deny_rules", "deny_rules is empty");
}

TEST_CASE("reject: deny_rules without an allow basis", "[policy][reject]") {
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\ndeny_rules = [{ method = \"DELETE\" }]\n"),
             7, 14, ep_key + ".deny_rules", "deny_rules need an allow basis");
}

TEST_CASE("reject: L7 fields on an L4 or tcp endpoint", "[policy][reject]") {
  expect_one(endpoint("port = 443\naccess = \"full\"\n"), 6, 10, ep_key + ".access",
             "access needs an L7 protocol (rest, websocket, graphql, mcp, json-rpc), but this "
             "endpoint is L4");
  expect_one(
      endpoint("port = 443\nprotocol = \"tcp\"\nrules = [{ allow = { method = \"GET\" } }]\n"), 7,
      9, ep_key + ".rules", "but this endpoint is protocol tcp");
  expect_one(endpoint("port = 443\ndeny_rules = [{ method = \"GET\" }]\n"), 6, 14,
             ep_key + ".deny_rules", "deny_rules needs an L7 protocol");
  expect_one(endpoint("port = 443\npath = \"/v1/**\"\n"), 6, 8, ep_key + ".path",
             "path needs an L7 protocol");
  expect_one(endpoint("port = 443\nrequest_body_credential_rewrite = true\n"), 6, 35,
             ep_key + ".request_body_credential_rewrite", "needs an L7 protocol");
  expect_ok(endpoint("port = 443\nrequest_body_credential_rewrite = false\n"));
}

TEST_CASE("reject: an L7 protocol with neither access nor rules", "[policy][reject]") {
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\n"), 6, 12, ep_key + ".protocol",
             "protocol rest needs access or rules");
  expect_one(endpoint("port = 443\nprotocol = \"json-rpc\"\n"), 6, 12, ep_key + ".protocol",
             "protocol json-rpc needs access or rules");
  expect_one(endpoint("port = 443\nprotocol = \"mcp\"\naccess = \"full\"\n"), 7, 10,
             ep_key + ".access", "access is not valid for protocol mcp");
}

TEST_CASE("reject: unknown enumerated values", "[policy][reject]") {
  expect_one("version = 1\n[landlock]\ncompatibility = \"strict\"\n", 3, 17,
             "landlock.compatibility", "unknown compatibility \"strict\"");
  expect_one(endpoint("port = 443\nprotocol = \"sql\"\n"), 6, 12, ep_key + ".protocol",
             "unknown protocol \"sql\"");
  // Only the protocol is reported, not the L7 fields that depend on it.
  expect_one(endpoint("port = 443\nprotocol = \"REST\"\naccess = \"full\"\n"), 6, 12,
             ep_key + ".protocol", "unknown protocol \"REST\"");
  expect_one(endpoint("port = 443\ntls = \"mitm\"\n"), 6, 7, ep_key + ".tls",
             "unknown tls mode \"mitm\"");
  expect_one(endpoint("port = 443\nenforcement = \"warn\"\n"), 6, 15, ep_key + ".enforcement",
             "unknown enforcement \"warn\"");
  expect_one(endpoint("port = 443\nprotocol = \"rest\"\naccess = \"write\"\n"), 7, 10,
             ep_key + ".access", "unknown access \"write\"");
  // Deprecated no-ops are accepted.
  expect_ok(endpoint("port = 443\ntls = \"passthrough\"\n"));
  expect_ok(endpoint("port = 443\ntls = \"terminate\"\n"));
}

TEST_CASE("reject: malformed L7 rules", "[policy][reject]") {
  const std::string head = "port = 443\nprotocol = \"rest\"\n";
  expect_one(endpoint(head + "rules = [{ allow = { path = \"repos/**\" } }]\n"), 7, 29,
             ep_key + ".rules[0].allow.path", "must start with '/'");
  expect_one(endpoint(head + "rules = [{ allow = { path = \"/a/[b\" } }]\n"), 7, 29,
             ep_key + ".rules[0].allow.path", "bad glob: unclosed '['");
  expect_one(endpoint(head + "rules = [{ allow = { method = \"GET /\" } }]\n"), 7, 31,
             ep_key + ".rules[0].allow.method", "malformed method");
  expect_one(endpoint(head + "rules = [{}]\n"), 7, 10, ep_key + ".rules[0].allow",
             "rule has no allow table");
  expect_one(endpoint(head + "rules = [{ allow = { query = { q = { any = [] } } } }]\n"), 7, 44,
             ep_key + ".rules[0].allow.query.q.any", "any is empty");
  expect_one(endpoint(head + "rules = [{ allow = { query = { q = \"[\" } } }]\n"), 7, 36,
             ep_key + ".rules[0].allow.query.q", "bad glob");
}

TEST_CASE("reject: bad CIDR in allowed_ips", "[policy][reject]") {
  expect_one(ep_doc("port = 5432\nallowed_ips = [\"10.0.0.0/33\"]\n"), 5, 16,
             ep_key + ".allowed_ips[0]", "bad CIDR \"10.0.0.0/33\"");
  expect_one(ep_doc("port = 5432\nallowed_ips = [\"10.0.0.0/8\", \"intranet\"]\n"), 5, 30,
             ep_key + ".allowed_ips[1]", "bad CIDR \"intranet\"");
  expect_one(ep_doc("port = 5432\nallowed_ips = [\"2130706433\"]\n"), 5, 16,
             ep_key + ".allowed_ips[0]", "bad CIDR");
}

TEST_CASE("reject: allowed_ips overlapping reserved ranges", "[policy][reject]") {
  struct Case {
    const char* cidr;
    const char* range;
  };
  for (const Case& c : {
           Case{"127.0.0.1", "127.0.0.0/8 (loopback)"},
           Case{"126.0.0.0/7", "127.0.0.0/8 (loopback)"},
           Case{"169.254.169.254", "169.254.0.0/16 (link-local, cloud metadata)"},
           Case{"0.0.0.0", "0.0.0.0/32 (unspecified address)"},
           Case{"0.0.0.0/0", "ranges 127.0.0.0/8 (loopback), 169.254.0.0/16"},
           Case{"0.0.0.0/0", "0.0.0.0/32 (unspecified address)"},
           Case{"::1", "::1/128 (IPv6 loopback)"},
           Case{"fe80::/64", "fe80::/10 (IPv6 link-local)"},
           Case{"::", "::/128 (IPv6 unspecified address)"},
           Case{"::/0", "::1/128 (IPv6 loopback)"},
           Case{"::ffff:127.0.0.1", "127.0.0.0/8 (loopback)"},
       }) {
    INFO(c.cidr);
    expect_one(ep_doc("port = 5432\nallowed_ips = [\"" + std::string(c.cidr) + "\"]\n"), 5, 16,
               ep_key + ".allowed_ips[0]", c.range);
    const ParseResult r =
        parse(ep_doc("port = 5432\nallowed_ips = [\"" + std::string(c.cidr) + "\"]\n"));
    REQUIRE(r.diagnostics.size() == 1);
    CHECK_THAT(r.diagnostics[0].reason, Catch::Contains("overlaps the reserved range"));
  }
  expect_ok(
      ep_doc("port = 5432\nallowed_ips = [\"10.0.0.0/8\", \"172.16.0.0/12\", "
             "\"192.168.0.0/16\", \"fd00::/8\", \"1.0.0.0/8\"]\n"));
}

TEST_CASE("reject: malformed sizes and limits", "[policy][reject]") {
  for (const char* bad : {"\"4Q\"", "\"\"", "\"-1\"", "\"1.5G\"", "\"G\"", "\"4 G\"", "\"4GB\"",
                          "\" 4G\"", "\"0x10\""}) {
    INFO(bad);
    expect_one(std::string("version = 1\n[resources]\nmemory_max = ") + bad + "\n", 3, 14,
               "resources.memory_max", "malformed size");
  }
  expect_one("version = 1\n[resources]\nmemory_max = 0\n", 3, 14, "resources.memory_max",
             "greater than zero");
  expect_one("version = 1\n[resources]\nmemory_max = \"0K\"\n", 3, 14, "resources.memory_max",
             "greater than zero");
  expect_one("version = 1\n[resources]\nmemory_max = -1\n", 3, 14, "resources.memory_max",
             "greater than zero");
  expect_one("version = 1\n[resources]\nmemory_max = \"99999999999999999999\"\n", 3, 14,
             "resources.memory_max", "too large");
  expect_one("version = 1\n[resources]\nmemory_max = \"16777216T\"\n", 3, 14,
             "resources.memory_max", "too large");
  expect_one("version = 1\n[resources]\nmemory_max = 1.5\n", 3, 14, "resources.memory_max",
             "expected a string or an integer, found a float");

  for (const char* bad : {"\"200\"", "\"%\"", "\"1.5%\"", "\"abc%\"", "\"\"", "\"-5%\""}) {
    INFO(bad);
    expect_one(std::string("version = 1\n[resources]\ncpu_max = ") + bad + "\n", 3, 11,
               "resources.cpu_max", "malformed cpu_max");
  }
  expect_one("version = 1\n[resources]\ncpu_max = \"0%\"\n", 3, 11, "resources.cpu_max",
             "between 1% and 100000%");
  expect_one("version = 1\n[resources]\ncpu_max = \"100001%\"\n", 3, 11, "resources.cpu_max",
             "between 1% and 100000%");
  expect_one("version = 1\n[resources]\npids_max = 0\n", 3, 12, "resources.pids_max",
             "between 1 and 4194304");
  expect_one("version = 1\n[resources]\npids_max = 4194305\n", 3, 12, "resources.pids_max",
             "between 1 and 4194304");
  expect_one("version = 1\n[resources]\npids_max = \"10\"\n", 3, 12, "resources.pids_max",
             "expected an integer or \"max\"");
}

TEST_CASE("reject: conflicting overlapping endpoints", "[policy][reject]") {
  const std::string a = R"(version = 1
[network_policies.a]
[[network_policies.a.endpoints]]
host = "api.example.com"
port = 443
protocol = "rest"
access = "full"
[network_policies.b]
[[network_policies.b.endpoints]]
host = "API.example.com"
ports = [80, 443]
)";
  expect_one(a, 9, 1, "network_policies.b.endpoints[0]",
             "conflicts with endpoint at 3:1 (network_policies.a.endpoints[0]): same host "
             "api.example.com, port 443 and path, but a different protocol (rest vs L4)");

  // The later endpoint in the file is the one reported, whatever the rule names' order.
  const std::string z_first = R"(version = 1
[network_policies.z]
[[network_policies.z.endpoints]]
host = "db.example.com"
port = 5432
[network_policies.a]
[[network_policies.a.endpoints]]
host = "db.example.com"
port = 5432
tls = "skip"
)";
  expect_one(z_first, 7, 1, "network_policies.a.endpoints[0]",
             "conflicts with endpoint at 3:1 (network_policies.z.endpoints[0])");

  // Same path on both, different protocol: a conflict within one rule.
  expect_one(
      endpoint("port = 443\npath = \"/v1/**\"\nprotocol = \"rest\"\naccess = \"full\"\n"
               "[[network_policies.api.endpoints]]\nhost = \"api.example.com\"\n"
               "port = 443\npath = \"/v1/**\"\nprotocol = \"websocket\"\naccess = \"full\"\n"),
      9, 1, "network_policies.api.endpoints[1]", "different protocol (rest vs websocket)");
}

TEST_CASE("reject: invalid policy names", "[policy][reject]") {
  expect_one("version = 1\n[network_policies.\"bad name\"]\n", 2, 19,
             "network_policies.\"bad name\"", "invalid policy name \"bad name\"");
  expect_one("version = 1\n[network_policies." + std::string(129, 'n') + "]\n", 2, 19,
             "network_policies." + std::string(129, 'n'), "invalid policy name");
  expect_ok("version = 1\n[network_policies.\"v1.2_ok-name\"]\n");
}

TEST_CASE("reject: bad binaries", "[policy][reject]") {
  expect_one("version = 1\n[network_policies.api]\nbinaries = [{ path = \"/usr/bin/[ab\" }]\n", 3,
             22, "network_policies.api.binaries[0].path", "bad glob: unclosed '['");
  expect_one("version = 1\n[network_policies.api]\nbinaries = [{}]\n", 3, 13,
             "network_policies.api.binaries[0].path", "binary entry has no path");
}

TEST_CASE("reject: over-limit counts", "[policy][reject]") {
  SECTION("filesystem paths") {
    std::string text = "version = 1\n[filesystem_policy]\nread_only = [\n";
    for (size_t i = 0; i <= kMaxFilesystemPaths; ++i)
      text += "  \"/p" + std::to_string(i) + "\",\n";
    text += "]\n";
    expect_one(text, 4 + static_cast<uint32_t>(kMaxFilesystemPaths), 3,
               "filesystem_policy.read_only[256]", "too many filesystem paths: 257 (limit 256)");
  }
  SECTION("network policies") {
    std::string text = "version = 1\n";
    for (size_t i = 0; i <= kMaxNetworkRules; ++i) {
      text += "[network_policies.r" + std::to_string(i) + "]\n";
    }
    expect_one(text, 2, 1, "network_policies", "too many network policies: 1025 (limit 1024)");
  }
  SECTION("endpoints") {
    std::string text = "version = 1\n[network_policies.api]\nendpoints = [";
    for (size_t i = 0; i <= kMaxEndpointsPerRule; ++i) text += "{ host = \"a.example.com\" },";
    text += "]\n";
    expect_one(text, 3, 13, "network_policies.api.endpoints", "too many endpoints: 257");
  }
  SECTION("binaries") {
    std::string text = "version = 1\n[network_policies.api]\nbinaries = [";
    for (size_t i = 0; i <= kMaxBinariesPerRule; ++i) text += "{ path = \"/bin/x\" },";
    text += "]\n";
    expect_one(text, 3, 12, "network_policies.api.binaries", "too many binaries: 257");
  }
  SECTION("L7 rules") {
    std::string text = endpoint("port = 443\nprotocol = \"rest\"\nrules = [");
    for (size_t i = 0; i <= kMaxL7RulesPerEndpoint; ++i) text += "{ allow = {} },";
    text += "]\n";
    expect_one(text, 7, 9, ep_key + ".rules", "too many rules: 257 (limit 256)");
  }
  SECTION("policy text size") {
    const std::string text = "version = 1\n#" + std::string(kMaxPolicyFileBytes, 'x') + "\n";
    expect_one(text, 0, 0, "", "the limit is 1048576");
  }
}

TEST_CASE("reject: dotted keys nested deep enough to exhaust the parser's stack",
          "[policy][reject]") {
  // toml++ recurses once per dotted-key part; 200000 parts would crash it.
  std::string deep = "version = 1\n[network_policies.x]\n";
  for (int i = 0; i < 200000; ++i) deep += "a.";
  deep += "a = 1\n";
  // The 16th dot makes 17 parts: "a." is two columns wide, so it sits at column 32.
  expect_one(deep, 3, 32, "", "dotted key has more than 16 parts");
  expect_one("version = 1\n[a . b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q]\n", 2, 35, "",
             "more than 16 parts");

  // Dots in strings, multi-line strings and comments are not key parts.
  const std::string dotted(40, '.');
  expect_ok(ep_doc("host = \"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.example.com\"\nport = 443\n# " +
                   dotted + "\nprotocol = 'tcp' # " + dotted + "\n"));
  const std::string strings = R"(version = 1
[network_policies.x]
name = """
DOTS\
"" ''' DOTS''""""
[network_policies.y]
name = '''
DOTS'''
[network_policies.z]
name = "\"DOTS"
)";
  std::string text = strings;
  for (size_t at = text.find("DOTS"); at != std::string::npos; at = text.find("DOTS")) {
    text.replace(at, 4, dotted);
  }
  const auto p = expect_ok(text);
  CHECK(p->network_policies.size() == 3);
}

TEST_CASE("every problem is reported, in file order", "[policy][reject]") {
  const ParseResult r = parse(R"(version = 1
[network_policies.b]
[[network_policies.b.endpoints]]
host = "*.com"
port = 0
[network_policies.a]
[[network_policies.a.endpoints]]
host = "x.example.com"
[process]
run_as_user = "root"
[filesystem_policy]
read_write = ["/"]
bogus = 1
)");
  INFO(dump(r));
  CHECK(r.policy == nullptr);
  REQUIRE(r.diagnostics.size() == 6);
  const std::vector<std::pair<uint32_t, std::string>> expected = {
      {4, "network_policies.b.endpoints[0].host"}, {5, "network_policies.b.endpoints[0].port"},
      {7, "network_policies.a.endpoints[0].port"}, {10, "process.run_as_user"},
      {12, "filesystem_policy.read_write[0]"},     {13, "filesystem_policy.bogus"},
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(r.diagnostics[i].pos.line == expected[i].first);
    CHECK(r.diagnostics[i].key == expected[i].second);
  }
}

// ---------------------------------------------------------------------------------------------
// Files

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "policy_test.XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace

TEST_CASE("parse_policy_file reads a file and names it in diagnostics", "[policy][file]") {
  TempDir dir;
  const std::string good = (dir.path / "good.toml").string();
  std::ofstream(good) << "version = 1\n[process]\nrun_as_user = 2000\n";
  const ParseResult ok = parse_policy_file(good);
  INFO(dump(ok));
  REQUIRE(ok.ok());
  CHECK(ok.policy->process.run_as_user == 2000);
  CHECK(ok.policy->source == good);

  const std::string bad = (dir.path / "bad.toml").string();
  std::ofstream(bad) << "version = 1\n[process]\nrun_as_user = 0\n";
  const ParseResult rejected = parse_policy_file(bad);
  REQUIRE(rejected.diagnostics.size() == 1);
  CHECK(rejected.diagnostics[0].to_string() ==
        bad +
            ":3:15: process.run_as_user: root (id 0) is not allowed: the agent never runs as "
            "root");
}

TEST_CASE("parse_policy_file refuses missing, odd and oversized files", "[policy][file]") {
  TempDir dir;
  const ParseResult missing = parse_policy_file((dir.path / "nope.toml").string());
  REQUIRE(missing.diagnostics.size() == 1);
  CHECK_FALSE(missing.ok());
  CHECK(missing.diagnostics[0].pos.line == 0);
  CHECK_THAT(missing.diagnostics[0].reason,
             Catch::Contains("cannot open") && Catch::Contains("No such file or directory"));

  const ParseResult directory = parse_policy_file(dir.path.string());
  REQUIRE(directory.diagnostics.size() == 1);
  CHECK_THAT(directory.diagnostics[0].reason, Catch::Contains("not a regular file"));

  const std::string fifo = (dir.path / "fifo").string();
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  const ParseResult from_fifo = parse_policy_file(fifo);  // must not block
  REQUIRE(from_fifo.diagnostics.size() == 1);
  CHECK_THAT(from_fifo.diagnostics[0].reason, Catch::Contains("not a regular file"));

  const std::string big = (dir.path / "big.toml").string();
  std::ofstream(big) << "version = 1\n#" << std::string(kMaxPolicyFileBytes, 'x') << "\n";
  const ParseResult too_big = parse_policy_file(big);
  REQUIRE(too_big.diagnostics.size() == 1);
  CHECK_THAT(too_big.diagnostics[0].reason, Catch::Contains("the limit is 1048576"));
  CHECK(too_big.diagnostics[0].file == big);

  // Exactly at the limit is fine: the whole file is read, not a prefix of it.
  const std::string at_limit = (dir.path / "at-limit.toml").string();
  const std::string head = "version = 1\n#";
  const std::string tail = "\n[process]\nrun_as_user = 2001\n";
  std::ofstream(at_limit) << head
                          << std::string(kMaxPolicyFileBytes - head.size() - tail.size(), 'x')
                          << tail;
  REQUIRE(std::filesystem::file_size(at_limit) == kMaxPolicyFileBytes);
  const ParseResult fits = parse_policy_file(at_limit);
  INFO(dump(fits));
  REQUIRE(fits.ok());
  CHECK(fits.policy->process.run_as_user == 2001);
}

TEST_CASE("every policy example parses and validates clean", "[policy][examples]") {
  size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(OPENSHELL_POLICY_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".toml") continue;
    ++count;
    const ParseResult r = parse_policy_file(entry.path().string());
    INFO(entry.path().string() << "\n" << dump(r));
    CHECK(r.ok());
  }
  CHECK(count >= 4);

  const ParseResult def =
      parse_policy_file(std::string(OPENSHELL_POLICY_EXAMPLES_DIR) + "/default.toml");
  REQUIRE(def.ok());
  CHECK(def.policy->filesystem.read_only == default_policy()->filesystem.read_only);
  CHECK(def.policy->filesystem.read_write == default_policy()->filesystem.read_write);
  CHECK(def.policy->filesystem.include_workdir);
  CHECK(def.policy->network_policies.empty());
}

TEST_CASE("github-readonly.toml parses with its L7 rules", "[policy][examples]") {
  const ParseResult gh =
      parse_policy_file(std::string(OPENSHELL_POLICY_EXAMPLES_DIR) + "/github-readonly.toml");
  INFO(dump(gh));
  REQUIRE(gh.ok());
  const NetworkRule& api = gh.policy->network_policies.at("github_rest_api");
  REQUIRE(api.endpoints.size() == 1);
  CHECK(api.endpoints[0].protocol == Protocol::kRest);
  CHECK(api.endpoints[0].access == Access::kReadOnly);
  const NetworkRule& git = gh.policy->network_policies.at("github_git");
  REQUIRE(git.endpoints.size() == 1);
  REQUIRE(git.endpoints[0].rules.size() == 2);
  CHECK(git.endpoints[0].rules[0].method == "GET");
  CHECK(git.endpoints[0].rules[0].path == "/**/info/refs*");
  CHECK(git.endpoints[0].rules[1].method == "POST");
  CHECK(git.endpoints[0].rules[1].path == "/**/git-upload-pack");
}

// Issue 13.1, then 15.9: what the proxy does not enforce is refused, field by field, so a
// policy never promises a restriction that does not exist. REST and WebSocket rules are enforced
// (issue 15) and pass; the rest is refused at each position.
TEST_CASE("L7 fields pass where enforced and are refused, each at its position, where not",
          "[policy][l7]") {
  const std::string head = "version = 1\n[network_policies.api]\n[[network_policies.api.endpoints]]\n"
                           "host = \"api.example.com\"\nport = 443\n";
  const std::string key = "network_policies.api.endpoints[0]";
  for (const char* enforced : {
           "protocol = \"rest\"\naccess = \"read-only\"\n",
           "protocol = \"websocket\"\naccess = \"full\"\n",
           "protocol = \"rest\"\naccess = \"full\"\ndeny_rules = [{ method = \"DELETE\" }]\n",
           "protocol = \"rest\"\naccess = \"full\"\nenforcement = \"audit\"\n",
           "protocol = \"rest\"\naccess = \"full\"\nallow_encoded_slash = true\n",
           "protocol = \"rest\"\naccess = \"full\"\ntls = \"skip\"\n",
           "protocol = \"rest\"\nrules = [{ allow = { method = \"GET\", path = \"/a/*\", query = { "
           "tag = { any = [\"v1.*\"] } } } }]\n",
           "protocol = \"rest\"\naccess = \"full\"\nrequest_body_credential_rewrite = false\n",
           "protocol = \"rest\"\naccess = \"full\"\nrequest_body_credential_rewrite = true\n",
           "protocol = \"rest\"\naccess = \"full\"\ncredential_binding = \"my-api\"\n",
       }) {
    const ParseResult r = parse_policy_string(head + enforced, "t.toml");
    INFO(enforced << "\n" << dump(r));
    CHECK(r.ok());
  }
  struct Case {
    std::string fields;  // from line 6
    std::vector<std::pair<uint32_t, std::string>> refused;  // line, field
    std::string why;
  };
  const std::string later = "is not enforced in this version (protocol rest and websocket are";
  const std::vector<Case> cases = {
      {"protocol = \"graphql\"\nrules = [{ allow = { method = \"POST\" } }]\n",
       {{6, "protocol"}, {7, "rules"}}, later},
      {"protocol = \"mcp\"\nrules = [{ allow = { method = \"tools/call\" } }]\n",
       {{6, "protocol"}, {7, "rules"}}, later},
      {"protocol = \"json-rpc\"\nrules = [{ allow = { method = \"x\" } }]\n",
       {{6, "protocol"}, {7, "rules"}}, later},
      {"protocol = \"rest\"\naccess = \"full\"\npath = \"/v1/**\"\n", {{8, "path"}},
       "(choosing among endpoints by request path) is not enforced in this version"},
      {"protocol = \"graphql\"\nrules = [{ allow = { method = \"POST\" } }]\n"
       "credential_binding = \"my-api\"\n",
       {{6, "protocol"}, {7, "rules"}, {8, "credential_binding"}}, later},
  };
  for (const Case& c : cases) {
    const ParseResult r = parse_policy_string(head + c.fields, "t.toml");
    INFO(c.fields << "\n" << dump(r));
    CHECK_FALSE(r.ok());
    REQUIRE(r.diagnostics.size() == c.refused.size());
    for (size_t i = 0; i < c.refused.size(); ++i) {
      CHECK(r.diagnostics[i].pos.line == c.refused[i].first);
      CHECK(r.diagnostics[i].key == key + "." + c.refused[i].second);
      CHECK_THAT(r.diagnostics[i].reason, Catch::Contains(c.why));
    }
  }
  // What this version enforces stays valid: L4, tcp, and audit on an L4 endpoint.
  for (const char* fields : {"", "protocol = \"tcp\"\n", "enforcement = \"audit\"\n"}) {
    const ParseResult r = parse_policy_string(head + fields, "t.toml");
    INFO(fields << "\n" << dump(r));
    CHECK(r.ok());
  }
}

// Issue 13.11 (and 14.4): what may change at runtime is one function over two policies, and it
// names each key that differs.
TEST_CASE("static_differences names each static key that differs", "[policy][static]") {
  const std::string base =
      "version = 1\n[filesystem_policy]\nread_only = [\"/usr\"]\n[process]\nrun_as_user = \"sandbox\"\n"
      "[network_policies.a]\n[[network_policies.a.endpoints]]\nhost = \"a.example\"\nport = 443\n";
  const auto running = expect_ok(base);
  // Only network_policies differ: nothing.
  const auto net = expect_ok(
      "version = 1\n[filesystem_policy]\nread_only = [\"/usr\"]\n[process]\nrun_as_user = 1000\n");
  CHECK(static_differences(*running, *net).empty());
  const auto changed = expect_ok(
      "version = 1\n[filesystem_policy]\nread_only = [\"/usr\", \"/etc\"]\ninclude_workdir = false\n"
      "[process]\nrun_as_user = 1001\n[landlock]\ncompatibility = \"hard_requirement\"\n"
      "[resources]\nmemory_max = \"1G\"\ncpu_max = \"max\"\n");
  CHECK(static_differences(*running, *changed) ==
        std::vector<std::string>{
            "filesystem_policy.include_workdir: true -> false",
            "filesystem_policy.read_only: [\"/usr\"] -> [\"/usr\", \"/etc\"]",
            "landlock.compatibility: \"best_effort\" -> \"hard_requirement\"",
            "process.run_as_user: 1000 -> 1001",
            "resources.memory_max: unset -> 1073741824",
            "resources.cpu_max: unset -> max",
        });
}

TEST_CASE("with_static_sections_of keeps what a policy set leaves out", "[policy][static]") {
  const std::string running =
      "version = 1\n[filesystem_policy]\nread_only = [\"/usr\", \"/srv\"]\n[process]\n"
      "run_as_user = 1001\n[resources]\nmemory_max = \"1G\"\n";
  const std::string only_network =
      "version = 1\n# mine\n[network_policies.a]\n[[network_policies.a.endpoints]]\n"
      "host = \"a.example\"\nport = 443\n";
  const std::string merged = with_static_sections_of(only_network, running);
  CHECK(merged.rfind(only_network, 0) == 0);  // the caller's text first, as written
  const auto m = expect_ok(merged);
  const auto r = expect_ok(running);
  CHECK(static_differences(*r, *m).empty());
  CHECK(m->network_policies.size() == 1);
  // A section the new text gives stays its own.
  const std::string own_process = "version = 1\n[process]\nrun_as_user = 1002\n";
  const auto p = expect_ok(with_static_sections_of(own_process, running));
  CHECK(p->process.run_as_user == 1002);
  CHECK(p->filesystem.read_only == std::vector<std::string>{"/usr", "/srv"});
  // Nothing to take from a running text without those sections, or from one that does not parse.
  CHECK(with_static_sections_of(own_process, "version = 1\n") == own_process);
  CHECK(with_static_sections_of(own_process, "[broken") == own_process);
}

TEST_CASE("[inference] names routes and a privacy rule, and is checked", "[policy][inference]") {
  const ParseResult ok = parse_policy_string(
      "version = 1\n[inference]\nroutes = [\"local-llama\", \"claude\", \"local-llama\"]\n"
      "privacy = \"local-only\"\n",
      "t.toml");
  INFO(dump(ok));
  REQUIRE(ok.ok());
  CHECK(ok.policy->inference.routes == std::vector<std::string>{"local-llama", "claude"});
  CHECK(ok.policy->inference.privacy == openshell::inference::Privacy::kLocalOnly);
  CHECK(ok.policy->inference.privacy_set);

  const ParseResult none = parse_policy_string("version = 1\n", "t.toml");
  REQUIRE(none.ok());
  CHECK(none.policy->inference.routes.empty());
  CHECK_FALSE(none.policy->inference.privacy_set);

  const ParseResult bad = parse_policy_string(
      "version = 1\n[inference]\nroutes = [\"ok\", \"Not/A/Name\"]\nprivacy = \"cheapest\"\n"
      "model = \"x\"\n",
      "t.toml");
  INFO(dump(bad));
  REQUIRE(bad.diagnostics.size() == 3);
  CHECK(bad.diagnostics[0].key == "inference.routes[1]");
  CHECK(bad.diagnostics[1].key == "inference.privacy");
  CHECK_THAT(bad.diagnostics[1].reason, Catch::Contains("local-only, prefer-local or any"));
  CHECK(bad.diagnostics[2].key == "inference.model");
}

TEST_CASE("credential_binding names a provider on an L7 endpoint only", "[policy][inference]") {
  const std::string head = "version = 1\n[network_policies.api]\n[[network_policies.api.endpoints]]\n"
                           "host = \"api.example.com\"\nport = 443\n";
  const ParseResult l4 = parse_policy_string(head + "credential_binding = \"my-api\"\n", "t.toml");
  REQUIRE(l4.diagnostics.size() == 1);
  CHECK_THAT(l4.diagnostics[0].reason, Catch::Contains("needs an L7 protocol"));
  const ParseResult bad = parse_policy_string(
      head + "protocol = \"rest\"\naccess = \"full\"\ncredential_binding = \"../x\"\n", "t.toml");
  REQUIRE(bad.diagnostics.size() == 1);
  CHECK_THAT(bad.diagnostics[0].reason, Catch::Contains("bad provider name"));
  const ParseResult good = parse_policy_string(
      head + "protocol = \"rest\"\naccess = \"full\"\ncredential_binding = \"my-api\"\n", "t.toml");
  REQUIRE(good.ok());
  CHECK(good.policy->network_policies.at("api").endpoints[0].credential_binding == "my-api");
}
