#include "core/cidr.hpp"

#include <catch2/catch.hpp>
#include <string>

using openshell::Cidr;
using openshell::IpAddress;
using openshell::parse_cidr;
using openshell::parse_ip;

namespace {

Cidr cidr(const std::string& s) {
  auto r = parse_cidr(s);
  INFO(s);
  REQUIRE(r.ok());
  return *r;
}

IpAddress ip(const std::string& s) {
  auto r = parse_ip(s);
  INFO(s);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("parse_ip accepts canonical IPv4 and IPv6 text", "[cidr]") {
  const IpAddress v4 = ip("192.168.1.5");
  CHECK_FALSE(v4.v6);
  CHECK(v4.bytes[0] == 192);
  CHECK(v4.bytes[3] == 5);
  CHECK(v4.bytes[4] == 0);
  CHECK(to_string(v4) == "192.168.1.5");

  const IpAddress v6 = ip("::1");
  CHECK(v6.v6);
  CHECK(v6.bytes[15] == 1);
  CHECK(to_string(v6) == "::1");

  CHECK(to_string(ip("FD00::ABCD")) == "fd00::abcd");
  CHECK(ip("::ffff:127.0.0.1").v6);
}

TEST_CASE("parse_ip rejects numeric spellings that are not IP literals", "[cidr]") {
  for (const char* bad :
       {"2130706433", "0x7f000001", "127.1", "127.0.0.01", "017.0.0.1", "1.2.3.4.5", "256.0.0.1",
        "", " 1.2.3.4", "1.2.3.4 ", "[::1]", "fe80::1%eth0", "::g", "1.2.3.4/8", "localhost"}) {
    INFO(bad);
    CHECK_FALSE(parse_ip(bad).ok());
  }
  CHECK_FALSE(parse_ip(std::string("1.2.3.4\0", 8)).ok());
  CHECK_FALSE(parse_ip(std::string(200, '1')).ok());
}

TEST_CASE("parse_cidr reads blocks and bare addresses", "[cidr]") {
  const Cidr ten = cidr("10.0.0.0/8");
  CHECK_FALSE(ten.v6);
  CHECK(ten.prefix == 8);
  CHECK(to_string(ten) == "10.0.0.0/8");

  CHECK(cidr("192.168.1.5").prefix == 32);
  CHECK(to_string(cidr("192.168.1.5")) == "192.168.1.5/32");
  CHECK(cidr("fd00::/8").v6);
  CHECK(cidr("fd00::/8").prefix == 8);
  CHECK(cidr("::1").prefix == 128);
  CHECK(to_string(cidr("0.0.0.0/0")) == "0.0.0.0/0");
  CHECK(to_string(cidr("::/0")) == "::/0");
}

TEST_CASE("parse_cidr clears host bits beyond the prefix", "[cidr]") {
  CHECK(cidr("10.1.2.3/8") == cidr("10.0.0.0/8"));
  CHECK(to_string(cidr("10.1.2.3/8")) == "10.0.0.0/8");
  CHECK(to_string(cidr("192.168.1.255/23")) == "192.168.0.0/23");
  CHECK(to_string(cidr("fd12:b456::1/17")) == "fd12:8000::/17");
}

TEST_CASE("parse_cidr rejects malformed prefixes", "[cidr]") {
  for (const char* bad :
       {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08",
        "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/1000", "/8", "10.0.0/8", "fd00::/x"}) {
    INFO(bad);
    CHECK_FALSE(parse_cidr(bad).ok());
  }
}

TEST_CASE("contains checks membership, including v4-mapped IPv6", "[cidr]") {
  const Cidr loopback = cidr("127.0.0.0/8");
  CHECK(contains(loopback, ip("127.0.0.1")));
  CHECK(contains(loopback, ip("127.255.255.255")));
  CHECK_FALSE(contains(loopback, ip("128.0.0.1")));
  CHECK(contains(loopback, ip("::ffff:127.0.0.1")));
  CHECK_FALSE(contains(loopback, ip("::1")));

  CHECK(contains(cidr("fe80::/10"), ip("fe80::1")));
  CHECK(contains(cidr("fe80::/10"), ip("febf::1")));
  CHECK_FALSE(contains(cidr("fe80::/10"), ip("fec0::1")));
  CHECK(contains(cidr("0.0.0.0/0"), ip("8.8.8.8")));
  CHECK_FALSE(contains(cidr("0.0.0.0/0"), ip("2001:db8::1")));
  CHECK(contains(cidr("::/0"), ip("8.8.8.8")));  // a v4 address is reachable as ::ffff:a.b.c.d
  CHECK(contains(cidr("10.0.0.5"), ip("10.0.0.5")));
  CHECK_FALSE(contains(cidr("10.0.0.5"), ip("10.0.0.6")));

  CHECK(contains(cidr("10.0.0.0/8"), cidr("10.1.0.0/16")));
  CHECK_FALSE(contains(cidr("10.1.0.0/16"), cidr("10.0.0.0/8")));
}

TEST_CASE("overlaps is symmetric and works across families", "[cidr]") {
  struct Case {
    const char* a;
    const char* b;
    bool overlap;
  };
  for (const Case& c : {
           Case{"10.0.0.0/8", "10.1.0.0/16", true},
           Case{"10.0.0.0/8", "11.0.0.0/8", false},
           Case{"0.0.0.0/0", "127.0.0.0/8", true},
           Case{"0.0.0.0/0", "0.0.0.0/32", true},
           Case{"1.0.0.0/8", "0.0.0.0/32", false},
           Case{"169.254.169.254", "169.254.0.0/16", true},
           Case{"::ffff:127.0.0.0/104", "127.0.0.0/8", true},
           Case{"::ffff:0:0/96", "169.254.0.0/16", true},
           Case{"::/0", "127.0.0.0/8", true},
           Case{"::/0", "::1/128", true},
           Case{"fd00::/8", "::1/128", false},
           Case{"fd00::/8", "fe80::/10", false},
           Case{"2001:db8::/32", "127.0.0.0/8", false},
           Case{"::/96", "::1/128", true},
       }) {
    INFO(c.a << " vs " << c.b);
    CHECK(overlaps(cidr(c.a), cidr(c.b)) == c.overlap);
    CHECK(overlaps(cidr(c.b), cidr(c.a)) == c.overlap);
  }
}
