#include "core/net_guard.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

using openshell::IpAddress;
using namespace openshell::net;  // NOLINT(google-build-using-namespace)
using namespace std::string_view_literals;

namespace {

IpAddress ip(const std::string& text) {
  auto r = openshell::parse_ip(text);
  INFO(text);
  REQUIRE(r.ok());
  return *r;
}

AddressClass cls(const std::string& text) { return classify(ip(text)); }

HostCheck expect_form(std::string_view raw, HostForm form) {
  HostCheck c = check_host(raw);
  INFO("host '" << std::string(raw) << "' problem: " << c.problem);
  CHECK(c.form == form);
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// classify

TEST_CASE("IPv4 special-purpose ranges are classified", "[net_guard]") {
  CHECK(cls("127.0.0.1") == AddressClass::kLoopback);
  CHECK(cls("127.255.255.254") == AddressClass::kLoopback);
  CHECK(cls("169.254.169.254") == AddressClass::kLinkLocal);
  CHECK(cls("0.0.0.0") == AddressClass::kUnspecified);
  CHECK(cls("0.1.2.3") == AddressClass::kUnspecified);
  CHECK(cls("10.1.2.3") == AddressClass::kPrivate);
  CHECK(cls("172.16.0.1") == AddressClass::kPrivate);
  CHECK(cls("172.31.255.255") == AddressClass::kPrivate);
  CHECK(cls("172.32.0.1") == AddressClass::kPublic);
  CHECK(cls("192.168.1.1") == AddressClass::kPrivate);
  CHECK(cls("100.64.0.1") == AddressClass::kCarrierNat);
  CHECK(cls("100.127.255.255") == AddressClass::kCarrierNat);
  CHECK(cls("100.128.0.1") == AddressClass::kPublic);
  CHECK(cls("192.0.0.8") == AddressClass::kIetfProtocol);
  CHECK(cls("198.18.0.1") == AddressClass::kBenchmark);
  CHECK(cls("198.19.255.255") == AddressClass::kBenchmark);
  CHECK(cls("192.0.2.1") == AddressClass::kDocumentation);
  CHECK(cls("198.51.100.1") == AddressClass::kDocumentation);
  CHECK(cls("203.0.113.1") == AddressClass::kDocumentation);
  CHECK(cls("224.0.0.1") == AddressClass::kMulticast);
  CHECK(cls("239.255.255.255") == AddressClass::kMulticast);
  CHECK(cls("240.0.0.1") == AddressClass::kReserved);
  CHECK(cls("255.255.255.254") == AddressClass::kReserved);
  CHECK(cls("255.255.255.255") == AddressClass::kBroadcast);
  CHECK(cls("8.8.8.8") == AddressClass::kPublic);
  CHECK(cls("1.1.1.1") == AddressClass::kPublic);
}

TEST_CASE("IPv6 special-purpose ranges are classified", "[net_guard]") {
  CHECK(cls("::1") == AddressClass::kLoopback);
  CHECK(cls("::") == AddressClass::kUnspecified);
  CHECK(cls("fe80::1") == AddressClass::kLinkLocal);
  CHECK(cls("febf:ffff::1") == AddressClass::kLinkLocal);
  CHECK(cls("fc00::1") == AddressClass::kUniqueLocal);
  CHECK(cls("fd12:3456::1") == AddressClass::kUniqueLocal);
  CHECK(cls("ff02::1") == AddressClass::kMulticast);
  CHECK(cls("2001:db8::1") == AddressClass::kDocumentation);
  CHECK(cls("3fff::1") == AddressClass::kDocumentation);
  CHECK(cls("2001:2::1") == AddressClass::kBenchmark);
  CHECK(cls("2001::1") == AddressClass::kIetfProtocol);
  CHECK(cls("fec0::1") == AddressClass::kReserved);
  CHECK(cls("100::1") == AddressClass::kReserved);
  CHECK(cls("4000::1") == AddressClass::kReserved);
  CHECK(cls("2606:4700::1111") == AddressClass::kPublic);
  CHECK(cls("2a00:1450::1") == AddressClass::kPublic);
}

TEST_CASE("IPv6 forms that embed an IPv4 address classify as that address", "[net_guard]") {
  // v4-mapped
  CHECK(cls("::ffff:127.0.0.1") == AddressClass::kLoopback);
  CHECK(cls("::ffff:7f00:1") == AddressClass::kLoopback);
  CHECK(cls("::ffff:169.254.169.254") == AddressClass::kLinkLocal);
  CHECK(cls("::ffff:0.0.0.0") == AddressClass::kUnspecified);
  CHECK(cls("::ffff:10.0.0.1") == AddressClass::kPrivate);
  CHECK(cls("::ffff:8.8.8.8") == AddressClass::kPublic);
  // SIIT translated
  CHECK(cls("::ffff:0:127.0.0.1") == AddressClass::kLoopback);
  // v4-compatible
  CHECK(cls("::127.0.0.1") == AddressClass::kLoopback);
  CHECK(cls("::10.0.0.1") == AddressClass::kPrivate);
  // NAT64 well-known prefix
  CHECK(cls("64:ff9b::127.0.0.1") == AddressClass::kLoopback);
  CHECK(cls("64:ff9b::a9fe:a9fe") == AddressClass::kLinkLocal);
  CHECK(cls("64:ff9b::192.168.0.1") == AddressClass::kPrivate);
  CHECK(cls("64:ff9b::8.8.8.8") == AddressClass::kPublic);
  CHECK(cls("64:ff9b:1::1") == AddressClass::kReserved);
  // 6to4
  CHECK(cls("2002:7f00:1::1") == AddressClass::kLoopback);
  CHECK(cls("2002:0a00:1::1") == AddressClass::kPrivate);
  CHECK(cls("2002:0808:0808::1") == AddressClass::kPublic);
}

TEST_CASE("address classes have readable names", "[net_guard]") {
  CHECK(to_string(AddressClass::kLoopback) == "loopback");
  CHECK(to_string(AddressClass::kLinkLocal) == "link-local");
  CHECK(to_string(AddressClass::kCarrierNat) == "carrier-grade NAT");
  CHECK(to_string(AddressClass::kPublic) == "public");
}

// ---------------------------------------------------------------------------------------------
// always_blocked, control-plane ports

TEST_CASE("loopback, link-local and unspecified are always blocked in every spelling",
          "[net_guard]") {
  for (const char* a :
       {"127.0.0.1", "127.1.2.3", "::1", "169.254.169.254", "169.254.0.1", "0.0.0.0", "0.0.0.1",
        "::", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
        "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1"}) {
    INFO(a);
    CHECK(always_blocked(ip(a)));
  }
}

TEST_CASE("private, reserved and public addresses are not always blocked", "[net_guard]") {
  for (const char* a : {"10.0.0.1", "192.168.1.1", "100.64.0.1", "fc00::1", "224.0.0.1",
                        "255.255.255.255", "8.8.8.8", "2606:4700::1111", "::ffff:10.0.0.1"}) {
    INFO(a);
    CHECK_FALSE(always_blocked(ip(a)));
  }
}

TEST_CASE("control-plane ports are etcd, the Kubernetes API and the kubelet", "[net_guard]") {
  for (uint16_t p : {2379, 2380, 6443, 10250, 10255}) CHECK(is_control_plane_port(p));
  for (uint16_t p : {0, 80, 443, 2378, 6444, 8080, 10251, 65535})
    CHECK_FALSE(is_control_plane_port(p));
}

// ---------------------------------------------------------------------------------------------
// check_host: names

TEST_CASE("names are lower-cased and lose one trailing dot", "[net_guard]") {
  CHECK(expect_form("EXAMPLE.com.", HostForm::kName).host == "example.com");
  CHECK(expect_form("Api.GitHub.COM", HostForm::kName).host == "api.github.com");
  CHECK(expect_form("_acme-challenge.example.test", HostForm::kName).host ==
        "_acme-challenge.example.test");
  CHECK(expect_form("localhost", HostForm::kName).host == "localhost");
  CHECK(expect_form("1e100.net", HostForm::kName).host == "1e100.net");
  CHECK(expect_form("123.example.test", HostForm::kName).host == "123.example.test");
  CHECK_FALSE(check_host("example.com").ip.has_value());
}

TEST_CASE("a name may be 253 characters with 63-character labels", "[net_guard]") {
  const std::string label63(63, 'a');
  const std::string longest = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  REQUIRE(longest.size() == 253);
  expect_form(longest, HostForm::kName);
  expect_form(longest + ".", HostForm::kName);
}

// ---------------------------------------------------------------------------------------------
// check_host: literals

TEST_CASE("canonical dotted quads are IPv4 literals", "[net_guard]") {
  const HostCheck c = expect_form("127.0.0.1", HostForm::kIpLiteral);
  CHECK(c.host == "127.0.0.1");
  REQUIRE(c.ip.has_value());
  CHECK(*c.ip == ip("127.0.0.1"));
  CHECK(expect_form("169.254.169.254", HostForm::kIpLiteral).host == "169.254.169.254");
  CHECK(expect_form("0.0.0.0", HostForm::kIpLiteral).host == "0.0.0.0");
  CHECK(expect_form("10.0.0.5.", HostForm::kIpLiteral).host == "10.0.0.5");
}

TEST_CASE("IPv6 literals, bracketed or bare, lose brackets and are canonicalised", "[net_guard]") {
  const HostCheck mapped = expect_form("[::ffff:127.0.0.1]", HostForm::kIpLiteral);
  CHECK(mapped.host == "::ffff:127.0.0.1");
  REQUIRE(mapped.ip.has_value());
  CHECK(always_blocked(*mapped.ip));
  CHECK(expect_form("::1", HostForm::kIpLiteral).host == "::1");
  CHECK(expect_form("[::1]", HostForm::kIpLiteral).host == "::1");
  CHECK(expect_form("[2001:DB8:0:0::1]", HostForm::kIpLiteral).host == "2001:db8::1");
}

// ---------------------------------------------------------------------------------------------
// check_host: numeric tricks

TEST_CASE("non-canonical numeric spellings are tricks, with the address they read as",
          "[net_guard]") {
  const IpAddress loopback = ip("127.0.0.1");
  for (const char* h : {"2130706433", "0x7f000001", "0X7F000001", "0x7f.0.0.1", "0177.0.0.1",
                        "017700000001", "127.1", "127.0.1", "0x7f.1", "0177.0x0.1", "127.0.0.01",
                        "127.000.000.001", "2130706433."}) {
    const HostCheck c = expect_form(h, HostForm::kNumericTrick);
    INFO(h);
    REQUIRE(c.reads_as.has_value());
    CHECK(*c.reads_as == loopback);
    CHECK_FALSE(c.ip.has_value());
    CHECK_THAT(c.problem, Catch::Contains("127.0.0.1"));
  }
  CHECK(*expect_form("0xa9fea9fe", HostForm::kNumericTrick).reads_as == ip("169.254.169.254"));
  CHECK(*expect_form("0", HostForm::kNumericTrick).reads_as == ip("0.0.0.0"));
}

TEST_CASE("a host ending in a number that no parser reads as an address is still a trick",
          "[net_guard]") {
  for (const char* h :
       {"1.2.3.4.5", "256.1.1.1", "08.0.0.1", "example.123", "a.0x10", "4294967296", "1.2.3.256"}) {
    const HostCheck c = expect_form(h, HostForm::kNumericTrick);
    INFO(h);
    CHECK_FALSE(c.reads_as.has_value());
  }
}

// ---------------------------------------------------------------------------------------------
// check_host: invalid

TEST_CASE("control characters, spaces and NUL make a host invalid", "[net_guard]") {
  CHECK_THAT(expect_form("a.example.test\0.evil"sv, HostForm::kInvalid).problem,
             Catch::Contains("NUL"));
  CHECK(expect_form("\0"sv, HostForm::kInvalid).host.empty());
  expect_form("example.com ", HostForm::kInvalid);
  expect_form("exa mple.com", HostForm::kInvalid);
  expect_form("example.com\r\nX-Injected: 1", HostForm::kInvalid);
  expect_form("example.com\t", HostForm::kInvalid);
  expect_form("example\x7f.com", HostForm::kInvalid);
}

TEST_CASE("empty hosts, empty labels and doubled trailing dots are invalid", "[net_guard]") {
  expect_form("", HostForm::kInvalid);
  expect_form(".", HostForm::kInvalid);
  CHECK_THAT(expect_form("example.com..", HostForm::kInvalid).problem,
             Catch::Contains("more than one dot"));
  expect_form("a..example.com", HostForm::kInvalid);
  expect_form(".example.com", HostForm::kInvalid);
  expect_form("..", HostForm::kInvalid);
  expect_form("127.0.0.1..", HostForm::kInvalid);
}

TEST_CASE("labels over 63 and names over 253 characters are invalid", "[net_guard]") {
  expect_form(std::string(64, 'a') + ".example.com", HostForm::kInvalid);
  const std::string label63(63, 'a');
  expect_form(label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b'),
              HostForm::kInvalid);
}

TEST_CASE("characters outside [A-Za-z0-9.-_] are invalid in names", "[net_guard]") {
  for (const char* h : {"ex@mple.com", "example.com/path", "user:pw@example.com", "example.com:443",
                        "exa*mple.com", "*.example.com", "b\xc3\xbc.de", "a\\b.com", "a,b.com"}) {
    INFO(h);
    expect_form(h, HostForm::kInvalid);
  }
}

TEST_CASE("zone ids and percent escapes are invalid", "[net_guard]") {
  expect_form("fe80::1%eth0", HostForm::kInvalid);
  expect_form("[fe80::1%25eth0]", HostForm::kInvalid);
  expect_form("example%2ecom", HostForm::kInvalid);
}

TEST_CASE("brackets must wrap exactly one IPv6 address", "[net_guard]") {
  for (const char* h : {"[::1", "::1]", "[[::1]]", "[]", "[127.0.0.1]", "[example.com]",
                        "[::1]:443", "[::1].", "a[::1]", "[v1.fe]", "[::g]"}) {
    INFO(h);
    expect_form(h, HostForm::kInvalid);
  }
}

TEST_CASE("an unbracketed colon must be an IPv6 address", "[net_guard]") {
  expect_form("127.0.0.1:80", HostForm::kInvalid);
  expect_form("::1.", HostForm::kInvalid);
  expect_form("::ffff:127.1", HostForm::kInvalid);
}

// ---------------------------------------------------------------------------------------------
// blocked names

TEST_CASE("localhost names and the metadata service are blocked by name", "[net_guard]") {
  CHECK(is_blocked_name("localhost"));
  CHECK(is_blocked_name("app.localhost"));
  CHECK(is_blocked_name("metadata.google.internal"));
  CHECK_FALSE(is_blocked_name("localhost.example.com"));
  CHECK_FALSE(is_blocked_name("notlocalhost"));
  CHECK_FALSE(is_blocked_name("example.com"));
}

TEST_CASE("split_authority: host and port from an authority") {
  std::string host;
  uint16_t port = 0;
  CHECK(split_authority("example.com:8443", &host, &port, 80));
  CHECK((host == "example.com" && port == 8443));
  CHECK(split_authority("example.com", &host, &port, 443));
  CHECK((host == "example.com" && port == 443));
  CHECK(split_authority("[2001:db8::1]:8080", &host, &port, 80));
  CHECK((host == "[2001:db8::1]" && port == 8080));
  for (const char* bad : {"", ":80", "h:0", "h:65536", "h:8x", "[::1", "[::1]x", "h:123456"}) {
    INFO(bad);
    CHECK_FALSE(split_authority(bad, &host, &port, 80));
  }
}

TEST_CASE("parse_upstream_proxy: http://HOST:PORT and nothing else") {
  auto p = parse_upstream_proxy("http://proxy.corp:3128");
  REQUIRE(p.ok());
  CHECK((p->host == "proxy.corp" && p->port == 3128));
  p = parse_upstream_proxy("http://[fd00::1]:8080/");
  REQUIRE(p.ok());
  CHECK((p->host == "fd00::1" && p->port == 8080));
  CHECK(parse_upstream_proxy("http://proxy").value().port == 80);
  for (const char* bad : {"https://proxy:3128", "proxy:3128", "http://user:pw@proxy:3128",
                          "http://proxy:3128/path", "http://", "socks5://proxy:1080"}) {
    INFO(bad);
    CHECK_FALSE(parse_upstream_proxy(bad).ok());
  }
}
