#include "core/dns_message.hpp"

#include <algorithm>
#include <string_view>

namespace openshell::dns {
namespace {

constexpr uint8_t kLabelTypeMask = 0xC0;  // 00 = label, 11 = pointer, 01/10 = reserved/obsolete
constexpr size_t kQuestionFixedSize = 4;  // QTYPE + QCLASS
// Owner (root, one byte) + TYPE + CLASS + TTL + RDLENGTH.
constexpr size_t kOptFixedSize = 11;
constexpr size_t kOptionHeaderSize = 4;
constexpr uint16_t kEdnsDoBit = 0x8000;
constexpr uint16_t kCompressedQuestionName = 0xC000 | kHeaderSize;
constexpr size_t kRrFixedSize = 12;  // pointer owner + TYPE + CLASS + TTL + RDLENGTH
constexpr uint32_t kMaxTtl = 0x7FFFFFFF;
constexpr size_t kV4Size = 4;
constexpr size_t kV6Size = 16;

// Reads big-endian fields from a packet. Callers check `remaining()` first; the reader itself
// never reads past the end.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  [[nodiscard]] size_t remaining() const { return bytes_.size() - pos_; }
  [[nodiscard]] size_t pos() const { return pos_; }
  uint8_t u8() { return bytes_[pos_++]; }
  uint16_t u16() {
    const auto v = static_cast<uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    const uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::span<const uint8_t> take(size_t n) {
    const auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

bool is_label_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return to_lower(x) == to_lower(y);
         });
}

// Reads an uncompressed name; fills the original-case and lower-cased dotted forms.
Status read_name(Reader& r, std::string& as_sent, std::string& lower) {
  size_t wire_length = 0;
  for (;;) {
    if (r.remaining() < 1) return Error::invalid("name runs past end of packet");
    const uint8_t len = r.u8();
    if ((len & kLabelTypeMask) == kLabelTypeMask) {
      return Error::invalid("compression pointer in question");
    }
    if ((len & kLabelTypeMask) != 0) return Error::invalid("reserved label type");
    // From here len <= 63: the two top bits are clear.
    wire_length += 1 + len;
    if (wire_length > kMaxNameWireLength) return Error::invalid("name longer than 255 bytes");
    if (len == 0) return {};
    if (r.remaining() < len) return Error::invalid("label runs past end of packet");
    if (!as_sent.empty()) {
      as_sent.push_back('.');
      lower.push_back('.');
    }
    for (const uint8_t c : r.take(len)) {
      if (!is_label_char(c)) return Error::invalid("invalid character in label");
      as_sent.push_back(static_cast<char>(c));
      lower.push_back(to_lower(static_cast<char>(c)));
    }
  }
}

Result<Edns> read_opt(Reader& r) {
  if (r.remaining() < kOptFixedSize) return Error::invalid("additional record runs past end");
  if (r.u8() != 0) return Error::invalid("additional record owner is not the root");
  if (r.u16() != kTypeOpt) return Error::invalid("additional record is not OPT");
  Edns edns;
  edns.udp_payload_size = r.u16();
  const uint32_t ttl = r.u32();  // extended RCODE (8) | version (8) | flags (16)
  if (((ttl >> 16) & 0xFF) != 0) return Error::invalid("unsupported EDNS version");
  edns.dnssec_ok = (ttl & kEdnsDoBit) != 0;
  const uint16_t rdlength = r.u16();
  if (r.remaining() < rdlength) return Error::invalid("OPT data runs past end");
  // Options are not used, only checked to tile the RDATA exactly.
  Reader options(r.take(rdlength));
  while (options.remaining() > 0) {
    if (options.remaining() < kOptionHeaderSize) return Error::invalid("truncated EDNS option");
    options.u16();  // OPTION-CODE
    const uint16_t len = options.u16();
    if (options.remaining() < len) return Error::invalid("EDNS option runs past end");
    options.take(len);
  }
  return edns;
}

// Appends the wire form of a dotted name, or returns false for a name parse_query would refuse.
bool append_name(std::string_view dotted, std::vector<uint8_t>& out) {
  const size_t start = out.size();
  if (!dotted.empty()) {
    size_t from = 0;
    for (;;) {
      const size_t dot = dotted.find('.', from);
      const std::string_view label =
          dotted.substr(from, dot == std::string_view::npos ? std::string_view::npos : dot - from);
      if (label.empty() || label.size() > kMaxLabelLength) return false;
      if (!std::all_of(label.begin(), label.end(),
                       [](char c) { return is_label_char(static_cast<uint8_t>(c)); })) {
        return false;
      }
      out.push_back(static_cast<uint8_t>(label.size()));
      out.insert(out.end(), label.begin(), label.end());
      if (out.size() - start + 1 > kMaxNameWireLength) return false;
      if (dot == std::string_view::npos) break;
      from = dot + 1;
    }
  }
  out.push_back(0);
  return true;
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xFFFF));
}

void patch16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v & 0xFF);
}

size_t response_limit(const Query& q) {
  if (!q.edns) return kClassicUdpSize;
  return std::clamp<size_t>(q.edns->udp_payload_size, kClassicUdpSize, kMaxQuerySize);
}

std::vector<uint8_t> build_response(const Query& q, Rcode rcode, bool authoritative,
                                    std::span<const IpAddress> addrs, uint32_t ttl) {
  std::vector<uint8_t> out;
  out.reserve(kClassicUdpSize);
  put16(out, q.id);
  uint16_t flags = kFlagQr | kFlagRa | (q.flags & (kOpcodeMask | kFlagRd | kFlagCd));
  if (authoritative) flags |= kFlagAa;
  flags |= static_cast<uint16_t>(rcode);
  put16(out, flags);
  put16(out, 1);  // QDCOUNT
  put16(out, 0);  // ANCOUNT, patched below
  put16(out, 0);  // NSCOUNT
  put16(out, q.edns ? 1 : 0);

  // Echo the name with the client's own capitalisation when we have it (DNS 0x20).
  const std::string& echo =
      equal_ignoring_case(q.name_as_sent, q.question.name) ? q.name_as_sent : q.question.name;
  if (!append_name(echo, out)) return {};
  put16(out, q.question.qtype);
  put16(out, q.question.qclass);

  const bool want_v4 = q.question.qtype == kTypeA;
  const bool want_v6 = q.question.qtype == kTypeAaaa;
  const size_t opt_size = q.edns ? kOptFixedSize : 0;
  const size_t limit = response_limit(q);
  uint16_t answers = 0;
  if (rcode == Rcode::kNoError && q.question.qclass == kClassIn && (want_v4 || want_v6)) {
    const size_t rdlength = want_v4 ? kV4Size : kV6Size;
    for (const IpAddress& a : addrs) {
      if (answers >= kMaxAnswers) break;
      if (a.v6 != want_v6) continue;
      if (out.size() + kRrFixedSize + rdlength + opt_size > limit) break;
      put16(out, kCompressedQuestionName);
      put16(out, q.question.qtype);
      put16(out, kClassIn);
      put32(out, std::min(ttl, kMaxTtl));
      put16(out, static_cast<uint16_t>(rdlength));
      out.insert(out.end(), a.bytes.begin(), a.bytes.begin() + static_cast<ptrdiff_t>(rdlength));
      ++answers;
    }
  }
  patch16(out, 6, answers);

  if (q.edns) {
    out.push_back(0);  // root owner
    put16(out, kTypeOpt);
    put16(out, kAdvertisedUdpSize);
    put32(out, q.edns->dnssec_ok ? kEdnsDoBit : 0);  // extended RCODE 0, version 0
    put16(out, 0);                                   // no options
  }
  return out;
}

}  // namespace

Result<Query> parse_query(std::span<const uint8_t> packet) {
  if (packet.size() < kHeaderSize) return Error::invalid("shorter than a DNS header");
  if (packet.size() > kMaxQuerySize) return Error::invalid("query too large");
  Reader r(packet);
  Query q;
  q.id = r.u16();
  q.flags = r.u16();
  const uint16_t qdcount = r.u16();
  const uint16_t ancount = r.u16();
  const uint16_t nscount = r.u16();
  const uint16_t arcount = r.u16();
  if ((q.flags & kFlagQr) != 0) return Error::invalid("not a query (QR set)");
  if ((q.flags & kOpcodeMask) != 0) return Error::invalid("opcode is not QUERY");
  if ((q.flags & kFlagTc) != 0) return Error::invalid("truncated query");
  if (qdcount != 1) return Error::invalid("QDCOUNT is not 1");
  if (ancount != 0 || nscount != 0) return Error::invalid("query carries answer or authority");
  if (arcount > 1) return Error::invalid("more than one additional record");

  if (auto s = read_name(r, q.name_as_sent, q.question.name); !s) return s.error();
  if (r.remaining() < kQuestionFixedSize) return Error::invalid("question runs past end");
  q.question.qtype = r.u16();
  q.question.qclass = r.u16();

  if (arcount == 1) {
    auto edns = read_opt(r);
    if (!edns) return edns.error();
    q.edns = *edns;
  }
  if (r.remaining() != 0) return Error::invalid("trailing bytes after last record");
  return q;
}

std::vector<uint8_t> build_answer(const Query& query, std::span<const IpAddress> addrs,
                                  uint32_t ttl) {
  return build_response(query, Rcode::kNoError, /*authoritative=*/true, addrs, ttl);
}

std::vector<uint8_t> build_nxdomain(const Query& query) {
  return build_response(query, Rcode::kNxDomain, /*authoritative=*/true, {}, 0);
}

std::vector<uint8_t> build_nodata(const Query& query) {
  return build_response(query, Rcode::kNoError, /*authoritative=*/true, {}, 0);
}

std::vector<uint8_t> build_refused(const Query& query) {
  return build_response(query, Rcode::kRefused, /*authoritative=*/false, {}, 0);
}

std::vector<uint8_t> build_servfail(const Query& query) {
  return build_response(query, Rcode::kServFail, /*authoritative=*/false, {}, 0);
}

}  // namespace openshell::dns
