#include "core/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace openshell {
namespace {

// Longer than any valid text form; also bounds the stack copy handed to inet_pton.
constexpr size_t kMaxAddressText = 64;
constexpr unsigned kV4MappedPrefix = 96;

// A block in the single IPv6 space that contains() and overlaps() compare in.
struct Block {
  std::array<uint8_t, 16> bytes{};
  unsigned prefix = 0;
};

Block to_block(bool v6, const std::array<uint8_t, 16>& bytes, unsigned prefix) {
  if (v6) return Block{bytes, prefix};
  Block b;
  b.bytes[10] = 0xff;
  b.bytes[11] = 0xff;
  std::copy_n(bytes.begin(), 4, b.bytes.begin() + 12);
  b.prefix = prefix + kV4MappedPrefix;
  return b;
}

bool same_leading_bits(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b,
                       unsigned bits) {
  const unsigned whole = bits / 8;
  if (!std::equal(a.begin(), a.begin() + whole, b.begin())) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

void clear_host_bits(std::array<uint8_t, 16>& bytes, unsigned prefix) {
  for (unsigned i = 0; i < bytes.size(); ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= prefix) {
      bytes[i] = 0;
    } else if (prefix - first_bit < 8) {
      bytes[i] &= static_cast<uint8_t>(0xff << (8 - (prefix - first_bit)));
    }
  }
}

}  // namespace

Result<IpAddress> parse_ip(std::string_view text) {
  if (text.empty()) return Error::invalid("empty address");
  if (text.size() >= kMaxAddressText || text.find('\0') != std::string_view::npos) {
    return Error::invalid("not an IP address");
  }
  char buf[kMaxAddressText] = {};
  std::memcpy(buf, text.data(), text.size());

  IpAddress ip;
  ip.v6 = text.find(':') != std::string_view::npos;
  if (ip.v6) {
    in6_addr a6{};
    if (inet_pton(AF_INET6, buf, &a6) != 1) {
      return Error::invalid("'" + std::string(text) + "' is not an IPv6 address");
    }
    std::memcpy(ip.bytes.data(), &a6, sizeof(a6));
  } else {
    in_addr a4{};
    if (inet_pton(AF_INET, buf, &a4) != 1) {
      return Error::invalid("'" + std::string(text) + "' is not an IPv4 address");
    }
    std::memcpy(ip.bytes.data(), &a4, sizeof(a4));
  }
  return ip;
}

std::string to_string(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "?";
  }
  return buf;
}

Result<Cidr> parse_cidr(std::string_view text) {
  const size_t slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return ip.error();

  Cidr cidr;
  cidr.v6 = ip->v6;
  cidr.addr = ip->bytes;
  const unsigned max_prefix = cidr.v6 ? 128 : 32;
  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    // Decimal only, no sign, no leading zeros: the same strictness inet_pton applies to octets.
    const bool well_formed =
        !digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        (digits.size() == 1 || digits[0] != '0');
    if (!well_formed) {
      return Error::invalid("'" + std::string(text) + "' has a malformed prefix length");
    }
    prefix = 0;
    for (char c : digits) prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    if (prefix > max_prefix) {
      return Error::invalid("prefix length /" + std::string(digits) + " is larger than " +
                            std::to_string(max_prefix));
    }
  }
  cidr.prefix = static_cast<uint8_t>(prefix);
  clear_host_bits(cidr.addr, prefix);
  return cidr;
}

std::string to_string(const Cidr& cidr) {
  IpAddress ip;
  ip.v6 = cidr.v6;
  ip.bytes = cidr.addr;
  return to_string(ip) + "/" + std::to_string(cidr.prefix);
}

bool contains(const Cidr& block, const IpAddress& ip) {
  const Block outer = to_block(block.v6, block.addr, block.prefix);
  const Block inner = to_block(ip.v6, ip.bytes, ip.v6 ? 128 : 32);
  return same_leading_bits(outer.bytes, inner.bytes, outer.prefix);
}

bool contains(const Cidr& outer, const Cidr& inner) {
  const Block o = to_block(outer.v6, outer.addr, outer.prefix);
  const Block i = to_block(inner.v6, inner.addr, inner.prefix);
  return o.prefix <= i.prefix && same_leading_bits(o.bytes, i.bytes, o.prefix);
}

bool overlaps(const Cidr& a, const Cidr& b) {
  const Block x = to_block(a.v6, a.addr, a.prefix);
  const Block y = to_block(b.v6, b.addr, b.prefix);
  return same_leading_bits(x.bytes, y.bytes, std::min(x.prefix, y.prefix));
}

}  // namespace openshell
