#include "core/egress.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/policy.hpp"

using openshell::IpAddress;
using openshell::egress::check_addresses;
using openshell::egress::ConnectRequest;
using openshell::egress::decide;
using openshell::egress::Decision;
using openshell::egress::DenyReason;
using openshell::egress::Verdict;
using openshell::policy::Policy;
using namespace std::string_view_literals;

namespace {

using Chain = std::vector<std::string>;

const Chain kCurl = {"/usr/bin/curl"};

std::shared_ptr<const Policy> policy(const std::string& toml) {
  const auto r = openshell::policy::parse_policy_string("version = 1\n" + toml, "egress.toml");
  std::string diags;
  for (const auto& d : r.diagnostics) diags += d.to_string() + "\n";
  INFO("policy:\n" << toml << "\ndiagnostics:\n" << diags);
  REQUIRE(r.ok());
  return r.policy;
}

// One rule `name` with one endpoint on `host` (a TOML value line set) and optional binaries.
std::string rule(const std::string& name, const std::string& endpoint_fields,
                 const std::string& binaries = "") {
  std::string out = "[network_policies." + name + "]\n";
  if (!binaries.empty()) out += "binaries = [" + binaries + "]\n";
  out += "[[network_policies." + name + ".endpoints]]\n" + endpoint_fields + "\n";
  return out;
}

Decision connect(const Policy& p, std::string_view host, uint16_t port, Chain chain = kCurl) {
  return decide(p, ConnectRequest{std::string(host), port, std::move(chain)});
}

void expect_allow(const Decision& d) {
  INFO("reason " << openshell::egress::to_string(d.reason) << ": " << d.reason_text);
  CHECK(d.verdict == Verdict::kAllow);
  CHECK_FALSE(d.audit_only);
  CHECK(d.reason == DenyReason::kNone);
  CHECK(d.endpoint != nullptr);
}

void expect_deny(const Decision& d, DenyReason reason) {
  INFO("got " << openshell::egress::to_string(d.reason) << ": " << d.reason_text);
  CHECK(d.verdict == Verdict::kDeny);
  CHECK_FALSE(d.audit_only);
  CHECK(d.reason == reason);
  CHECK_FALSE(d.reason_text.empty());
}

IpAddress ip(const std::string& text) {
  auto r = openshell::parse_ip(text);
  REQUIRE(r.ok());
  return *r;
}

// Stage 1 must allow; returns stage 2 over `addresses`.
Decision resolve(const Policy& p, std::string_view host, uint16_t port,
                 const std::vector<std::string>& addresses, std::vector<IpAddress>* dial,
                 Chain chain = kCurl) {
  const Decision s1 = connect(p, host, port, std::move(chain));
  INFO("stage 1: " << s1.reason_text);
  REQUIRE(s1.verdict == Verdict::kAllow);
  std::vector<IpAddress> resolved;
  for (const std::string& a : addresses) resolved.push_back(ip(a));
  return check_addresses(s1, resolved, port, dial);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hard blocks in stage 1: denied even when a rule names the host

TEST_CASE("127.0.0.1 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("local", "host = \"127.0.0.1\"\nport = 80"));
  const Decision d = connect(*p, "127.0.0.1", 80);
  expect_deny(d, DenyReason::kAlwaysBlockedAddress);
  CHECK_THAT(d.reason_text, Catch::Contains("always-blocked"));
  CHECK(d.endpoint == nullptr);
}

TEST_CASE("169.254.169.254 (cloud metadata) is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("meta", "host = \"169.254.169.254\"\nport = 80"));
  expect_deny(connect(*p, "169.254.169.254", 80), DenyReason::kAlwaysBlockedAddress);
}

TEST_CASE("0.0.0.0 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("any", "host = \"0.0.0.0\"\nport = 80"));
  expect_deny(connect(*p, "0.0.0.0", 80), DenyReason::kAlwaysBlockedAddress);
}

TEST_CASE("::1 and [::ffff:127.0.0.1] are denied under any policy", "[egress]") {
  // IPv6 literals cannot be named as hosts and allowed_ips can never cover loopback, so the
  // closest a policy gets is a private allowed_ips block and a catch-all name rule.
  const auto p = policy(rule("lan", "allowed_ips = [\"10.0.0.0/8\", \"fc00::/7\"]\nport = 80") +
                        rule("all", "host = \"**.example.test\"\nport = 80"));
  expect_deny(connect(*p, "::1", 80), DenyReason::kAlwaysBlockedAddress);
  expect_deny(connect(*p, "[::1]", 80), DenyReason::kAlwaysBlockedAddress);
  const Decision d = connect(*p, "[::ffff:127.0.0.1]", 80);
  expect_deny(d, DenyReason::kAlwaysBlockedAddress);
  CHECK(d.host == "::ffff:127.0.0.1");
  CHECK_THAT(d.reason_text, Catch::Contains("[::ffff:127.0.0.1]:80"));
}

TEST_CASE("localhost and metadata.google.internal are denied by name", "[egress]") {
  const auto p = policy(rule("names", "host = \"localhost\"\nport = 80") +
                        rule("gce", "host = \"metadata.google.internal\"\nport = 80"));
  expect_deny(connect(*p, "localhost", 80), DenyReason::kAlwaysBlockedAddress);
  expect_deny(connect(*p, "LOCALHOST.", 80), DenyReason::kAlwaysBlockedAddress);
  expect_deny(connect(*p, "metadata.google.internal", 80), DenyReason::kAlwaysBlockedAddress);
}

TEST_CASE("2130706433 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("dec", "host = \"2130706433\"\nport = 80"));
  const Decision d = connect(*p, "2130706433", 80);
  expect_deny(d, DenyReason::kNumericHost);
  CHECK_THAT(d.reason_text, Catch::Contains("127.0.0.1"));
}

TEST_CASE("0x7f000001 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("hex", "host = \"0x7f000001\"\nport = 80"));
  expect_deny(connect(*p, "0x7f000001", 80), DenyReason::kNumericHost);
}

TEST_CASE("0177.0.0.1 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("oct", "host = \"0177.0.0.1\"\nport = 80"));
  expect_deny(connect(*p, "0177.0.0.1", 80), DenyReason::kNumericHost);
}

TEST_CASE("127.1 is denied even when a rule names it", "[egress]") {
  const auto p = policy(rule("short", "host = \"127.1\"\nport = 80"));
  expect_deny(connect(*p, "127.1", 80), DenyReason::kNumericHost);
}

TEST_CASE("a host with a NUL byte is denied even though its prefix is allowed", "[egress]") {
  const auto p = policy(rule("api", "host = \"a.example.test\"\nport = 443"));
  const Decision d = connect(*p, "a.example.test\0.evil.test"sv, 443);
  expect_deny(d, DenyReason::kInvalidHost);
  CHECK(d.host.empty());
  // The NUL is escaped, never copied into the text.
  CHECK(d.reason_text.find('\0') == std::string::npos);
  CHECK_THAT(d.reason_text, Catch::Contains("\\x00"));
}

TEST_CASE("example.com.. is denied even though example.com is allowed", "[egress]") {
  const auto p = policy(rule("web", "host = \"example.com\"\nport = 443"));
  expect_deny(connect(*p, "example.com..", 443), DenyReason::kInvalidHost);
}

TEST_CASE("EXAMPLE.com. normalises to example.com and is allowed", "[egress]") {
  const auto p = policy(rule("web", "host = \"example.com\"\nport = 443"));
  const Decision d = connect(*p, "EXAMPLE.com.", 443);
  expect_allow(d);
  CHECK(d.host == "example.com");
  CHECK(d.rule == "web");
  REQUIRE(d.endpoint != nullptr);
  CHECK(d.endpoint == &p->network_policies.at("web").endpoints[0]);
}

TEST_CASE("hard blocks win over an empty policy", "[egress]") {
  const auto p = policy("");
  expect_deny(connect(*p, "127.0.0.1", 80), DenyReason::kAlwaysBlockedAddress);
  expect_deny(connect(*p, "0x7f000001", 80), DenyReason::kNumericHost);
  expect_deny(connect(*p, "", 80), DenyReason::kInvalidHost);
}

// ---------------------------------------------------------------------------------------------
// Host matching

TEST_CASE("*.example.test matches one label only", "[egress]") {
  const auto p = policy(rule("wild", "host = \"*.example.test\"\nport = 443"));
  expect_allow(connect(*p, "a.example.test", 443));
  expect_allow(connect(*p, "A.Example.Test.", 443));
  expect_deny(connect(*p, "example.test", 443), DenyReason::kNoMatchingPolicy);
  expect_deny(connect(*p, "a.b.example.test", 443), DenyReason::kNoMatchingPolicy);
}

TEST_CASE("**.example.test matches any depth of one label or more", "[egress]") {
  const auto p = policy(rule("deep", "host = \"**.example.test\"\nport = 443"));
  expect_allow(connect(*p, "a.example.test", 443));
  expect_allow(connect(*p, "a.b.example.test", 443));
  expect_deny(connect(*p, "example.test", 443), DenyReason::kNoMatchingPolicy);
}

TEST_CASE("an unmatched host is denied as no matching policy, naming host and binary", "[egress]") {
  const auto p = policy(rule("a", "host = \"a.example.test\"\nport = 443"));
  const Decision d = connect(*p, "b.example.test", 443);
  expect_deny(d, DenyReason::kNoMatchingPolicy);
  CHECK(d.rule.empty());
  CHECK_THAT(d.reason_text, Catch::Contains("b.example.test:443"));
  CHECK_THAT(d.reason_text, Catch::Contains("/usr/bin/curl"));
}

TEST_CASE("a wildcard host never matches an IP literal", "[egress]") {
  const auto p = policy(rule("wild", "host = \"**.0.1\"\nport = 443"));
  expect_deny(connect(*p, "10.0.0.1", 443), DenyReason::kNoMatchingPolicy);
}

TEST_CASE("a hostless allowed_ips endpoint matches IP literals inside it, never names",
          "[egress]") {
  const auto p = policy(rule("lan", "allowed_ips = [\"10.0.0.0/8\"]\nport = 5432"));
  const Decision d = connect(*p, "10.1.2.3", 5432);
  expect_allow(d);
  CHECK(d.rule == "lan");
  expect_deny(connect(*p, "192.168.1.1", 5432), DenyReason::kNoMatchingPolicy);
  expect_deny(connect(*p, "db.example.test", 5432), DenyReason::kNoMatchingPolicy);
}

// ---------------------------------------------------------------------------------------------
// Ports

TEST_CASE("ports = [80, 443] allows both and denies 8080", "[egress]") {
  const auto p = policy(rule("web", "host = \"example.test\"\nports = [80, 443]"));
  expect_allow(connect(*p, "example.test", 80));
  expect_allow(connect(*p, "example.test", 443));
  const Decision d = connect(*p, "example.test", 8080);
  expect_deny(d, DenyReason::kPortNotAllowed);
  CHECK(d.rule == "web");
  CHECK_THAT(d.reason_text, Catch::Contains("port 8080"));
  CHECK_THAT(d.reason_text, Catch::Contains("80, 443"));
}

// ---------------------------------------------------------------------------------------------
// Binaries

TEST_CASE("a listed binary is allowed as the caller", "[egress]") {
  const auto p =
      policy(rule("gh", "host = \"api.github.com\"\nport = 443", "{ path = \"/usr/bin/curl\" }"));
  expect_allow(connect(*p, "api.github.com", 443, {"/usr/bin/curl"}));
}

TEST_CASE("a child of a listed binary is allowed through its ancestor", "[egress]") {
  const auto p =
      policy(rule("gh", "host = \"api.github.com\"\nport = 443", "{ path = \"/usr/bin/curl\" }"));
  expect_allow(connect(*p, "api.github.com", 443, {"/usr/bin/bash", "/usr/bin/curl"}));
}

TEST_CASE("an unlisted binary is denied, naming itself, its ancestors and the hint", "[egress]") {
  const auto p = policy(rule("github_api", "host = \"api.github.com\"\nport = 443",
                             "{ path = \"/usr/bin/gh\" }, { path = \"/usr/bin/curl\" }"));
  const Decision d = connect(*p, "api.github.com", 443, {"/usr/bin/python3.11", "/bin/sh"});
  expect_deny(d, DenyReason::kBinaryNotAllowed);
  CHECK(d.rule == "github_api");
  CHECK(d.endpoint == nullptr);
  CHECK_THAT(d.reason_text,
             Catch::StartsWith("binary /usr/bin/python3.11 not allowed by any rule for "
                               "api.github.com:443 (ancestors: /bin/sh)"));
  CHECK_THAT(d.reason_text, Catch::Contains("/usr/bin/gh, /usr/bin/curl"));
  CHECK_THAT(d.reason_text, Catch::Contains("symlink /usr/bin/python3,"));
}

TEST_CASE("no versioned-interpreter hint for ordinary binary names", "[egress]") {
  const auto p =
      policy(rule("gh", "host = \"api.github.com\"\nport = 443", "{ path = \"/usr/bin/curl\" }"));
  const Decision d = connect(*p, "api.github.com", 443, {"/usr/bin/wget"});
  expect_deny(d, DenyReason::kBinaryNotAllowed);
  CHECK_THAT(d.reason_text, Catch::Contains("(no ancestors)"));
  CHECK(d.reason_text.find("hint") == std::string::npos);
}

TEST_CASE("binary paths in reason texts are escaped", "[egress]") {
  const auto p =
      policy(rule("gh", "host = \"api.github.com\"\nport = 443", "{ path = \"/usr/bin/curl\" }"));
  const Decision d = connect(*p, "api.github.com", 443, {"/tmp/evil\n[ALLOWED]"});
  expect_deny(d, DenyReason::kBinaryNotAllowed);
  CHECK(d.reason_text.find('\n') == std::string::npos);
  CHECK_THAT(d.reason_text, Catch::Contains("/tmp/evil\\x0a[ALLOWED]"));
}

TEST_CASE("binary globs use path segments, and /** admits any binary", "[egress]") {
  const auto p =
      policy(rule("seg", "host = \"a.example.test\"\nport = 443", "{ path = \"/usr/bin/*\" }") +
             rule("any", "host = \"b.example.test\"\nport = 443", "{ path = \"/**\" }"));
  expect_allow(connect(*p, "a.example.test", 443, {"/usr/bin/curl"}));
  expect_deny(connect(*p, "a.example.test", 443, {"/usr/bin/x/curl"}),
              DenyReason::kBinaryNotAllowed);
  expect_allow(connect(*p, "b.example.test", 443, {"/opt/tool/bin/anything"}));
}

TEST_CASE("python allowed to A and curl allowed to B: python to B is denied", "[egress]") {
  const auto p = policy(
      rule("p1", "host = \"a.example.test\"\nport = 443", "{ path = \"/usr/bin/python3\" }") +
      rule("p2", "host = \"b.example.test\"\nport = 443", "{ path = \"/usr/bin/curl\" }"));
  const Chain python = {"/usr/bin/python3"};
  expect_allow(connect(*p, "a.example.test", 443, python));
  expect_allow(connect(*p, "b.example.test", 443, kCurl));
  const Decision d = connect(*p, "b.example.test", 443, python);
  expect_deny(d, DenyReason::kBinaryNotAllowed);
  CHECK(d.rule == "p2");
}

TEST_CASE("an unknown binary fails closed when the rule lists binaries", "[egress]") {
  const auto p =
      policy(rule("gh", "host = \"api.github.com\"\nport = 443", "{ path = \"/usr/bin/curl\" }") +
             rule("open", "host = \"open.example.test\"\nport = 443"));
  const Decision d = connect(*p, "api.github.com", 443, {});
  expect_deny(d, DenyReason::kUnknownBinary);
  CHECK(d.rule == "gh");
  // A rule without binaries admits any caller, known or not.
  expect_allow(connect(*p, "open.example.test", 443, {}));
}

TEST_CASE("a binary deny outranks a port deny from another rule", "[egress]") {
  const auto p =
      policy(rule("a_ports", "host = \"x.example.test\"\nport = 80") +
             rule("b_bins", "host = \"x.example.test\"\nport = 443", "{ path = \"/usr/bin/gh\" }"));
  const Decision d = connect(*p, "x.example.test", 443, kCurl);
  expect_deny(d, DenyReason::kBinaryNotAllowed);
  CHECK(d.rule == "b_bins");
}

// ---------------------------------------------------------------------------------------------
// Several rules, empty policies

TEST_CASE("when several rules match, the smallest rule name is reported", "[egress]") {
  const auto p = policy(rule("zeta", "host = \"x.example.test\"\nport = 443") +
                        rule("alpha", "host = \"**.example.test\"\nport = 443") +
                        rule("mid", "host = \"*.example.test\"\nport = 443"));
  const Decision d = connect(*p, "x.example.test", 443);
  expect_allow(d);
  CHECK(d.rule == "alpha");
  CHECK(d.endpoint == &p->network_policies.at("alpha").endpoints[0]);
}

TEST_CASE("an empty or absent network_policies denies everything", "[egress]") {
  const auto absent = policy("");
  const Decision d = connect(*absent, "example.test", 443);
  expect_deny(d, DenyReason::kEmptyPolicy);
  CHECK(d.rule.empty());
  const auto empty = policy("[network_policies]\n");
  expect_deny(connect(*empty, "example.test", 443), DenyReason::kEmptyPolicy);
  expect_deny(connect(*openshell::policy::default_policy(), "example.test", 443),
              DenyReason::kEmptyPolicy);
}

// ---------------------------------------------------------------------------------------------
// Audit

TEST_CASE("audit enforcement allows a binary or port deny on its host, flagged", "[egress]") {
  const auto p =
      policy(rule("watch", "host = \"api.example.test\"\nport = 443\nenforcement = \"audit\"",
                  "{ path = \"/usr/bin/curl\" }"));
  const Decision bin = connect(*p, "api.example.test", 443, {"/usr/bin/python3.11"});
  CHECK(bin.verdict == Verdict::kAllow);
  CHECK(bin.audit_only);
  CHECK(bin.reason == DenyReason::kBinaryNotAllowed);
  CHECK(bin.rule == "watch");
  CHECK(bin.endpoint == &p->network_policies.at("watch").endpoints[0]);
  CHECK_THAT(bin.reason_text, Catch::Contains("audit"));

  const Decision port = connect(*p, "api.example.test", 8443);
  CHECK(port.verdict == Verdict::kAllow);
  CHECK(port.audit_only);
  CHECK(port.reason == DenyReason::kPortNotAllowed);

  // A full match on an audit endpoint is a plain allow.
  expect_allow(connect(*p, "api.example.test", 443));
  // Other hosts are not covered by the audit endpoint.
  expect_deny(connect(*p, "other.example.test", 443), DenyReason::kNoMatchingPolicy);
}

TEST_CASE("audit never waives hard blocks", "[egress]") {
  const auto p = policy(rule("watch", "host = \"127.0.0.1\"\nport = 80\nenforcement = \"audit\"") +
                        rule("oct", "host = \"0177.0.0.1\"\nport = 80\nenforcement = \"audit\""));
  expect_deny(connect(*p, "127.0.0.1", 80), DenyReason::kAlwaysBlockedAddress);
  expect_deny(connect(*p, "0177.0.0.1", 80), DenyReason::kNumericHost);
}

TEST_CASE("audit never waives SSRF checks on resolved addresses", "[egress]") {
  const auto p =
      policy(rule("watch", "host = \"*.example.test\"\nport = 443\nenforcement = \"audit\"",
                  "{ path = \"/usr/bin/gh\" }"));
  std::vector<IpAddress> dial;
  const Decision d = resolve(*p, "a.example.test", 443, {"10.0.0.1"}, &dial);
  expect_deny(d, DenyReason::kPrivateAddress);
  CHECK(dial.empty());
}

// ---------------------------------------------------------------------------------------------
// Stage 2: resolved addresses

TEST_CASE("public addresses pass and are returned for dialling, deduplicated", "[egress]") {
  const auto p = policy(rule("web", "host = \"*.example.test\"\nport = 443"));
  std::vector<IpAddress> dial;
  const Decision d =
      resolve(*p, "a.example.test", 443, {"93.184.216.34", "2606:2800::1", "93.184.216.34"}, &dial);
  expect_allow(d);
  REQUIRE(dial.size() == 2);
  CHECK(dial[0] == ip("93.184.216.34"));
  CHECK(dial[1] == ip("2606:2800::1"));
}

TEST_CASE("a private address via an exact declared host is allowed", "[egress]") {
  const auto p = policy(rule("db", "host = \"db.corp.example.test\"\nport = 5432"));
  std::vector<IpAddress> dial;
  expect_allow(resolve(*p, "db.corp.example.test", 5432, {"10.0.0.5"}, &dial));
  CHECK(dial == std::vector<IpAddress>{ip("10.0.0.5")});
}

TEST_CASE("a private address via a wildcard host is denied", "[egress]") {
  const auto p = policy(rule("corp", "host = \"*.corp.example.test\"\nport = 5432"));
  std::vector<IpAddress> dial;
  const Decision d = resolve(*p, "db.corp.example.test", 5432, {"10.0.0.5"}, &dial);
  expect_deny(d, DenyReason::kPrivateAddress);
  CHECK(dial.empty());
  CHECK_THAT(d.reason_text, Catch::Contains("10.0.0.5"));
}

TEST_CASE("non-public ranges beyond RFC 1918 need the same opening", "[egress]") {
  const auto p = policy(rule("wild", "host = \"*.example.test\"\nport = 443"));
  for (const char* a : {"100.64.0.1", "fd00::1", "192.0.0.1", "198.18.0.1", "224.0.0.1",
                        "::ffff:192.168.0.1", "64:ff9b::10.0.0.1"}) {
    INFO(a);
    expect_deny(resolve(*p, "a.example.test", 443, {a}, nullptr), DenyReason::kPrivateAddress);
  }
}

TEST_CASE("a private IP literal the rule names exactly is allowed", "[egress]") {
  const auto p = policy(rule("nas", "host = \"192.168.1.20\"\nport = 445"));
  std::vector<IpAddress> dial;
  expect_allow(resolve(*p, "192.168.1.20", 445, {"192.168.1.20"}, &dial));
  CHECK(dial.size() == 1);
}

TEST_CASE("allowed_ips: inside passes, outside is denied", "[egress]") {
  const auto p = policy(rule("db",
                             "host = \"db.example.test\"\nport = 5432\n"
                             "allowed_ips = [\"10.20.0.0/16\"]"));
  std::vector<IpAddress> dial;
  expect_allow(resolve(*p, "db.example.test", 5432, {"10.20.1.2"}, &dial));
  CHECK(dial.size() == 1);

  const Decision out = resolve(*p, "db.example.test", 5432, {"10.20.1.2", "10.30.1.2"}, &dial);
  expect_deny(out, DenyReason::kNotInAllowedIps);
  CHECK(dial.empty());
  CHECK_THAT(out.reason_text, Catch::Contains("allowed_ips"));
  // allowed_ips constrains public answers too.
  expect_deny(resolve(*p, "db.example.test", 5432, {"8.8.8.8"}, nullptr),
              DenyReason::kNotInAllowedIps);
}

TEST_CASE("allowed_ips opens private addresses behind a wildcard host", "[egress]") {
  const auto p = policy(rule("corp",
                             "host = \"*.corp.example.test\"\nport = 443\n"
                             "allowed_ips = [\"10.0.0.0/8\"]"));
  expect_allow(resolve(*p, "git.corp.example.test", 443, {"10.1.1.1"}, nullptr));
}

TEST_CASE("a resolved set mixing a public and a loopback address is denied whole", "[egress]") {
  const auto p = policy(rule("web", "host = \"rebind.example.test\"\nport = 443"));
  std::vector<IpAddress> dial = {ip("1.2.3.4")};
  const Decision d = resolve(*p, "rebind.example.test", 443, {"93.184.216.34", "127.0.0.1"}, &dial);
  expect_deny(d, DenyReason::kAlwaysBlockedAddress);
  CHECK(dial.empty());
  CHECK_THAT(d.reason_text, Catch::Contains("always-blocked address 127.0.0.1"));
}

TEST_CASE("always-blocked answers are denied even inside allowed_ips' neighbourhood", "[egress]") {
  const auto p = policy(rule("lan",
                             "host = \"lan.example.test\"\nport = 80\n"
                             "allowed_ips = [\"10.0.0.0/8\"]"));
  for (const char* a : {"169.254.169.254", "::ffff:127.0.0.1", "::1", "0.0.0.0", "fe80::1"}) {
    INFO(a);
    expect_deny(resolve(*p, "lan.example.test", 80, {"10.0.0.1", a}, nullptr),
                DenyReason::kAlwaysBlockedAddress);
  }
}

TEST_CASE("control-plane port 6443 is denied on an allowed_ips endpoint", "[egress]") {
  const auto p = policy(rule("k8s",
                             "host = \"k8s.example.test\"\nports = [443, 6443]\n"
                             "allowed_ips = [\"10.0.0.0/8\"]"));
  expect_allow(resolve(*p, "k8s.example.test", 443, {"10.0.0.1"}, nullptr));
  const Decision d = resolve(*p, "k8s.example.test", 6443, {"10.0.0.1"}, nullptr);
  expect_deny(d, DenyReason::kControlPlanePort);
  CHECK_THAT(d.reason_text, Catch::Contains("control-plane port"));
}

TEST_CASE("control-plane ports are denied on declared-private and literal paths", "[egress]") {
  const auto p = policy(rule("etcd", "host = \"etcd.example.test\"\nports = [2379, 10250]") +
                        rule("lit", "host = \"10.0.0.9\"\nport = 10255"));
  expect_deny(resolve(*p, "etcd.example.test", 2379, {"10.0.0.2"}, nullptr),
              DenyReason::kControlPlanePort);
  expect_deny(resolve(*p, "etcd.example.test", 10250, {"192.168.0.2"}, nullptr),
              DenyReason::kControlPlanePort);
  expect_deny(resolve(*p, "10.0.0.9", 10255, {"10.0.0.9"}, nullptr), DenyReason::kControlPlanePort);
  // A public destination on a plain host endpoint keeps the port.
  expect_allow(resolve(*p, "etcd.example.test", 2379, {"93.184.216.34"}, nullptr));
}

TEST_CASE("a denied stage 1 passes through stage 2 unchanged", "[egress]") {
  const auto p = policy(rule("web", "host = \"example.test\"\nport = 443"));
  const Decision s1 = connect(*p, "other.test", 443);
  std::vector<IpAddress> dial = {ip("1.2.3.4")};
  const Decision s2 = check_addresses(s1, {ip("93.184.216.34")}, 443, &dial);
  expect_deny(s2, DenyReason::kNoMatchingPolicy);
  CHECK(s2.reason_text == s1.reason_text);
  CHECK(dial.empty());
}

TEST_CASE("an empty resolved set is denied", "[egress]") {
  const auto p = policy(rule("web", "host = \"example.test\"\nport = 443"));
  std::vector<IpAddress> dial;
  expect_deny(resolve(*p, "example.test", 443, {}, &dial), DenyReason::kInvalidHost);
  CHECK(dial.empty());
}

TEST_CASE("an audit allow stays flagged after a clean stage 2", "[egress]") {
  const auto p =
      policy(rule("watch", "host = \"api.example.test\"\nport = 443\nenforcement = \"audit\"",
                  "{ path = \"/usr/bin/curl\" }"));
  const Decision s1 = connect(*p, "api.example.test", 443, {"/usr/bin/wget"});
  REQUIRE(s1.audit_only);
  const Decision s2 = check_addresses(s1, {ip("93.184.216.34")}, 443, nullptr);
  CHECK(s2.verdict == Verdict::kAllow);
  CHECK(s2.audit_only);
}

// ---------------------------------------------------------------------------------------------
// Codes

TEST_CASE("deny reasons have stable snake_case codes", "[egress]") {
  using openshell::egress::error_class;
  using openshell::egress::to_string;
  CHECK(to_string(DenyReason::kNone) == "none");
  CHECK(to_string(DenyReason::kNoMatchingPolicy) == "policy_denied");
  CHECK(to_string(DenyReason::kBinaryNotAllowed) == "binary_not_allowed");
  CHECK(to_string(DenyReason::kPortNotAllowed) == "port_not_allowed");
  CHECK(to_string(DenyReason::kInvalidHost) == "invalid_host");
  CHECK(to_string(DenyReason::kNumericHost) == "numeric_host");
  CHECK(to_string(DenyReason::kAlwaysBlockedAddress) == "ssrf_denied");
  CHECK(to_string(DenyReason::kPrivateAddress) == "private_address");
  CHECK(to_string(DenyReason::kNotInAllowedIps) == "not_in_allowed_ips");
  CHECK(to_string(DenyReason::kControlPlanePort) == "control_plane_port");
  CHECK(to_string(DenyReason::kUnknownBinary) == "unknown_binary");
  CHECK(to_string(DenyReason::kEmptyPolicy) == "empty_policy");
  CHECK(to_string(DenyReason::kNameMismatch) == "name_mismatch");
  CHECK(to_string(DenyReason::kTlsRefused) == "tls_refused");

  CHECK(error_class(DenyReason::kAlwaysBlockedAddress) == "ssrf_denied");
  CHECK(error_class(DenyReason::kPrivateAddress) == "ssrf_denied");
  CHECK(error_class(DenyReason::kControlPlanePort) == "ssrf_denied");
  CHECK(error_class(DenyReason::kBinaryNotAllowed) == "policy_denied");
  CHECK(error_class(DenyReason::kEmptyPolicy) == "policy_denied");
  CHECK(error_class(DenyReason::kNameMismatch) == "policy_denied");
  CHECK(error_class(DenyReason::kTlsRefused) == "tls_refused");
  CHECK(error_class(DenyReason::kNone).empty());
}
