#include "core/net_guard.hpp"

#include <algorithm>
#include <vector>

#include "core/host_glob.hpp"

namespace openshell::net {
namespace {

struct V4Range {
  uint32_t network;
  unsigned prefix;
  AddressClass cls;
};

constexpr uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// First match wins, so the broadcast address precedes 240/4.
constexpr std::array<V4Range, 17> kV4Ranges = {{
    {v4(255, 255, 255, 255), 32, AddressClass::kBroadcast},
    {v4(0, 0, 0, 0), 8, AddressClass::kUnspecified},
    {v4(127, 0, 0, 0), 8, AddressClass::kLoopback},
    {v4(169, 254, 0, 0), 16, AddressClass::kLinkLocal},
    {v4(10, 0, 0, 0), 8, AddressClass::kPrivate},
    {v4(172, 16, 0, 0), 12, AddressClass::kPrivate},
    {v4(192, 168, 0, 0), 16, AddressClass::kPrivate},
    {v4(100, 64, 0, 0), 10, AddressClass::kCarrierNat},
    {v4(192, 0, 0, 0), 24, AddressClass::kIetfProtocol},
    {v4(198, 18, 0, 0), 15, AddressClass::kBenchmark},
    {v4(192, 0, 2, 0), 24, AddressClass::kDocumentation},
    {v4(198, 51, 100, 0), 24, AddressClass::kDocumentation},
    {v4(203, 0, 113, 0), 24, AddressClass::kDocumentation},
    {v4(192, 88, 99, 0), 24, AddressClass::kReserved},  // deprecated 6to4 relay anycast
    {v4(224, 0, 0, 0), 4, AddressClass::kMulticast},
    {v4(240, 0, 0, 0), 4, AddressClass::kReserved},
    {v4(0, 0, 0, 0), 0, AddressClass::kPublic},
}};

AddressClass classify_v4(uint32_t addr) {
  for (const V4Range& r : kV4Ranges) {
    const uint32_t mask = r.prefix == 0 ? 0 : ~uint32_t{0} << (32 - r.prefix);
    if ((addr & mask) == r.network) return r.cls;
  }
  return AddressClass::kPublic;
}

uint32_t read_v4(const std::array<uint8_t, 16>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         uint32_t{b[at + 3]};
}

bool all_zero(const std::array<uint8_t, 16>& b, size_t from, size_t to) {
  return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(from),
                     b.begin() + static_cast<std::ptrdiff_t>(to), [](uint8_t x) { return x == 0; });
}

// Leading `bits` of `b` equal those of the prefix spelled in `prefix` (16 bytes, rest zero).
bool in_v6(const std::array<uint8_t, 16>& b, std::array<uint8_t, 16> prefix, unsigned bits) {
  for (unsigned i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8U);
    const auto mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((b[i] & mask) != (prefix[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

AddressClass classify_v6(const std::array<uint8_t, 16>& b) {
  if (all_zero(b, 0, 16)) return AddressClass::kUnspecified;
  if (all_zero(b, 0, 15) && b[15] == 1) return AddressClass::kLoopback;
  // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (SIIT translated).
  if (all_zero(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) return classify_v4(read_v4(b, 12));
  if (all_zero(b, 0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return classify_v4(read_v4(b, 12));
  }
  // ::a.b.c.d (deprecated v4-compatible); :: and ::1 were handled above.
  if (all_zero(b, 0, 12)) return classify_v4(read_v4(b, 12));
  if (in_v6(b, {0x00, 0x64, 0xff, 0x9b}, 96)) return classify_v4(read_v4(b, 12));  // NAT64
  if (in_v6(b, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48)) return AddressClass::kReserved;
  if (in_v6(b, {0x20, 0x02}, 16)) return classify_v4(read_v4(b, 2));  // 6to4
  if (in_v6(b, {0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48)) return AddressClass::kBenchmark;
  if (in_v6(b, {0x20, 0x01, 0x0d, 0xb8}, 32)) return AddressClass::kDocumentation;
  if (in_v6(b, {0x20, 0x01}, 23)) return AddressClass::kIetfProtocol;
  if (in_v6(b, {0x3f, 0xff}, 20)) return AddressClass::kDocumentation;
  if (in_v6(b, {0xfc}, 7)) return AddressClass::kUniqueLocal;
  if (in_v6(b, {0xfe, 0x80}, 10)) return AddressClass::kLinkLocal;
  if (in_v6(b, {0xfe, 0xc0}, 10)) return AddressClass::kReserved;  // deprecated site-local
  if (in_v6(b, {0xff}, 8)) return AddressClass::kMulticast;
  if (in_v6(b, {0x01, 0x00}, 64)) return AddressClass::kReserved;  // discard-only
  // Only 2000::/3 is allocated as global unicast; the rest has no public hosts.
  if (!in_v6(b, {0x20}, 3)) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

// ---------------------------------------------------------------------------------------------
// Host spellings

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// The WHATWG URL parser's "ends in a number" test: a last label of decimal digits, or "0x"
// followed by hex digits, makes it parse the whole host as IPv4 (lower-cased input).
bool is_numeric_label(std::string_view label) {
  if (label.size() >= 2 && label[0] == '0' && label[1] == 'x') {
    return std::all_of(label.begin() + 2, label.end(), is_hex);
  }
  return !label.empty() && std::all_of(label.begin(), label.end(), is_digit);
}

// One inet_aton part: 0x-prefixed hex, 0-prefixed octal, or decimal. nullopt on a bad digit or
// a value above 32 bits.
std::optional<uint64_t> numeric_part(std::string_view s) {
  unsigned base = 10;
  if (s.size() >= 2 && s[0] == '0' && s[1] == 'x') {
    base = 16;
    s.remove_prefix(2);
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  uint64_t value = 0;
  for (char c : s) {
    unsigned digit = 0;
    if (is_digit(c)) {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    if (digit >= base) return std::nullopt;
    value = value * base + digit;
    if (value > 0xffffffffULL) return std::nullopt;
  }
  return value;
}

// What inet_aton (and, give or take, a WHATWG URL parser) makes of 1..4 numeric parts: every part
// but the last is one byte, the last fills the remaining bytes ("127.1" -> 127.0.0.1).
std::optional<IpAddress> inet_aton_reading(const std::vector<std::string_view>& parts) {
  if (parts.empty() || parts.size() > 4) return std::nullopt;
  uint32_t addr = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::optional<uint64_t> v = numeric_part(parts[i]);
    if (!v) return std::nullopt;
    const bool last = i + 1 == parts.size();
    if (!last) {
      if (*v > 0xff) return std::nullopt;
      addr |= static_cast<uint32_t>(*v) << (8 * (3 - i));
    } else {
      const unsigned free_bits = 8 * static_cast<unsigned>(4 - i);
      if (free_bits < 32 && *v >= (uint64_t{1} << free_bits)) return std::nullopt;
      addr |= static_cast<uint32_t>(*v);
    }
  }
  IpAddress ip;
  ip.bytes[0] = static_cast<uint8_t>(addr >> 24);
  ip.bytes[1] = static_cast<uint8_t>(addr >> 16);
  ip.bytes[2] = static_cast<uint8_t>(addr >> 8);
  ip.bytes[3] = static_cast<uint8_t>(addr);
  return ip;
}

std::string describe_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u > 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0xf];
}

HostCheck invalid(std::string why) {
  HostCheck out;
  out.form = HostForm::kInvalid;
  out.problem = std::move(why);
  return out;
}

HostCheck literal(const IpAddress& ip) {
  HostCheck out;
  out.form = HostForm::kIpLiteral;
  out.host = to_string(ip);
  out.ip = ip;
  return out;
}

HostCheck ipv6_literal(std::string_view text) {
  auto ip = parse_ip(text);
  if (!ip || !ip->v6)
    return invalid("holds ':' but is no IPv6 address (a port is not part of the host)");
  return literal(*ip);
}

}  // namespace

AddressClass classify(const IpAddress& ip) {
  return ip.v6 ? classify_v6(ip.bytes) : classify_v4(read_v4(ip.bytes, 0));
}

std::string_view to_string(AddressClass c) {
  switch (c) {
    case AddressClass::kPublic:
      return "public";
    case AddressClass::kLoopback:
      return "loopback";
    case AddressClass::kLinkLocal:
      return "link-local";
    case AddressClass::kUnspecified:
      return "unspecified";
    case AddressClass::kPrivate:
      return "private";
    case AddressClass::kCarrierNat:
      return "carrier-grade NAT";
    case AddressClass::kIetfProtocol:
      return "IETF protocol assignment";
    case AddressClass::kBenchmark:
      return "benchmarking";
    case AddressClass::kDocumentation:
      return "documentation";
    case AddressClass::kMulticast:
      return "multicast";
    case AddressClass::kBroadcast:
      return "broadcast";
    case AddressClass::kReserved:
      return "reserved";
    case AddressClass::kUniqueLocal:
      return "unique local";
  }
  return "unknown";
}

bool always_blocked(const IpAddress& ip) {
  const AddressClass c = classify(ip);
  return c == AddressClass::kLoopback || c == AddressClass::kLinkLocal ||
         c == AddressClass::kUnspecified;
}

bool is_control_plane_port(uint16_t port) {
  return std::find(kControlPlanePorts.begin(), kControlPlanePorts.end(), port) !=
         kControlPlanePorts.end();
}

HostCheck check_host(std::string_view raw) {
  if (raw.empty()) return invalid("is empty");
  for (const char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0) return invalid("contains a NUL byte");
    if (u == ' ') return invalid("contains a space");
    if (u < 0x20 || u == 0x7f) return invalid("contains a control character");
  }
  // A zone id names an interface of the proxy's host; percent-encoding would be decoded by some
  // parsers after our check. Neither belongs in a destination host.
  if (raw.find('%') != std::string_view::npos) return invalid("contains '%' (zone id or escape)");

  const size_t open = std::count(raw.begin(), raw.end(), '[');
  const size_t close = std::count(raw.begin(), raw.end(), ']');
  if (open != 0 || close != 0) {
    if (open != 1 || close != 1 || raw.size() < 2 || raw.front() != '[' || raw.back() != ']') {
      return invalid("has unbalanced or misplaced brackets");
    }
    const std::string_view inner = raw.substr(1, raw.size() - 2);
    if (inner.find(':') == std::string_view::npos) return invalid("brackets hold no IPv6 address");
    return ipv6_literal(inner);
  }
  if (raw.find(':') != std::string_view::npos) return ipv6_literal(raw);

  std::string host(raw);
  std::transform(host.begin(), host.end(), host.begin(), lower);
  if (host.back() == '.') host.pop_back();
  if (host.empty()) return invalid("has no labels");
  if (host.back() == '.') return invalid("ends in more than one dot");
  if (host.size() > policy::kMaxHostLength) {
    return invalid("is longer than " + std::to_string(policy::kMaxHostLength) + " characters");
  }
  for (const char c : host) {
    if (!is_name_char(c)) return invalid("contains " + describe_byte(c));
  }
  const std::vector<std::string_view> labels = policy::split_labels(host);
  for (const std::string_view label : labels) {
    if (label.empty()) return invalid("has an empty label ('..' or a leading dot)");
    if (label.size() > policy::kMaxHostLabelLength) {
      return invalid("has a label longer than " + std::to_string(policy::kMaxHostLabelLength) +
                     " characters");
    }
  }

  if (auto ip = parse_ip(host); ip && !ip->v6) return literal(*ip);

  HostCheck out;
  if (!is_numeric_label(labels.back())) {
    out.form = HostForm::kName;
    out.host = std::move(host);
    return out;
  }
  // No top-level domain is numeric, so a name ending in a number is always an address spelling
  // (or garbage a URL parser rejects); only the canonical dotted quad counts as an address.
  out.form = HostForm::kNumericTrick;
  out.reads_as = inet_aton_reading(labels);
  out.host = std::move(host);  // last: `labels` views into it
  out.problem = out.reads_as
                    ? "is a non-canonical spelling of the address " + to_string(*out.reads_as)
                    : std::string("ends in a number but is not a canonical dotted quad");
  return out;
}

bool is_blocked_name(std::string_view host) {
  constexpr std::string_view kLocalhost = "localhost";
  constexpr std::string_view kLocalhostSuffix = ".localhost";
  if (host == kLocalhost || host == "metadata.google.internal") return true;
  return host.size() > kLocalhostSuffix.size() &&
         host.substr(host.size() - kLocalhostSuffix.size()) == kLocalhostSuffix;
}

bool split_authority(std::string_view authority, std::string* host, uint16_t* port,
                     uint16_t default_port) {
  *port = default_port;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    *host = std::string(authority.substr(0, close + 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return false;
      port_text = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      *host = std::string(authority.substr(0, colon));
      port_text = authority.substr(colon + 1);
    } else {
      *host = std::string(authority);
    }
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    if (port_text.size() > 5) return false;
    for (char c : port_text) {
      if (c < '0' || c > '9') return false;
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return false;
    *port = static_cast<uint16_t>(value);
  }
  return !host->empty() && *port != 0;
}

Result<UpstreamProxy> parse_upstream_proxy(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return Error::invalid("upstream proxy " + std::string(url.substr(0, 128)) +
                          ": only http://HOST:PORT is supported");
  std::string_view authority = url.substr(kScheme.size());
  if (!authority.empty() && authority.back() == '/') authority.remove_suffix(1);
  UpstreamProxy proxy;
  if (authority.find_first_of("@/?#") != std::string_view::npos ||
      !split_authority(authority, &proxy.host, &proxy.port, 80))
    return Error::invalid("upstream proxy " + std::string(url.substr(0, 128)) +
                          ": expected http://HOST:PORT (no credentials, no path)");
  if (proxy.host.size() > 2 && proxy.host.front() == '[')
    proxy.host = proxy.host.substr(1, proxy.host.size() - 2);
  return proxy;
}

}  // namespace openshell::net
