#include "core/hosts_file.hpp"

#include <catch2/catch.hpp>
#include <string>

using openshell::hosts_file_lookup;
using openshell::IpAddress;
using openshell::parse_ip;

namespace {

IpAddress ip(const char* text) { return *parse_ip(text); }

constexpr const char* kHosts =
    "# The operator's internal hosts\n"
    "127.0.0.1\tlocalhost\n"
    "10.20.30.40  registry.corp.example registry   # the image registry\n"
    "10.20.30.41\tmodels.corp.example\n"
    "fd00::41 models.corp.example\n"
    "10.20.30.41 Models.Corp.Example\n"
    "fe80::1%eth0 linklocal.example\n"
    "not-an-address broken.example\n"
    "10.20.30.50\n"
    "  \t\n"
    "10.20.30.60 svc.corp.example\r\n";

}  // namespace

TEST_CASE("hosts file: names and aliases, exact, in file order, no repeats", "[hosts_file]") {
  CHECK(hosts_file_lookup(kHosts, "registry.corp.example") ==
        std::vector<IpAddress>{ip("10.20.30.40")});
  CHECK(hosts_file_lookup(kHosts, "registry") == std::vector<IpAddress>{ip("10.20.30.40")});
  CHECK(hosts_file_lookup(kHosts, "REGISTRY") == std::vector<IpAddress>{ip("10.20.30.40")});
  // Both families, the repeated v4 line once.
  CHECK(hosts_file_lookup(kHosts, "models.corp.example") ==
        std::vector<IpAddress>{ip("10.20.30.41"), ip("fd00::41")});
  CHECK(hosts_file_lookup(kHosts, "svc.corp.example") == std::vector<IpAddress>{ip("10.20.30.60")});
}

TEST_CASE("hosts file: no search list, no prefixes, comments and bad lines ignored", "[hosts_file]") {
  // "svc" must never become svc.corp.example, nor "registry.corp" match a longer name.
  CHECK(hosts_file_lookup(kHosts, "svc").empty());
  CHECK(hosts_file_lookup(kHosts, "registry.corp").empty());
  CHECK(hosts_file_lookup(kHosts, "corp.example").empty());
  // A trailing dot is the caller's to strip; the file never holds one.
  CHECK(hosts_file_lookup(kHosts, "registry.").empty());
  CHECK(hosts_file_lookup(kHosts, "the").empty());          // inside a comment
  CHECK(hosts_file_lookup(kHosts, "linklocal.example").empty());  // zone id: not ours to dial
  CHECK(hosts_file_lookup(kHosts, "broken.example").empty());
  CHECK(hosts_file_lookup(kHosts, "").empty());
  CHECK(hosts_file_lookup("", "localhost").empty());
  CHECK(hosts_file_lookup("10.0.0.1 last-line-without-newline", "last-line-without-newline") ==
        std::vector<IpAddress>{ip("10.0.0.1")});
}
