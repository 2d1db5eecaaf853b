#include "core/tls_peek.hpp"

namespace openshell::tls {
namespace {

constexpr uint8_t kContentTypeHandshake = 22;
constexpr uint8_t kVersionMajor = 3;
constexpr uint8_t kMaxVersionMinor = 4;  // TLS 1.3's number; records never carry more
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kHandshakeHeaderSize = 4;
constexpr size_t kRandomSize = 32;
constexpr size_t kMaxSessionIdSize = 32;
constexpr uint16_t kExtensionServerName = 0;
constexpr uint8_t kNameTypeHostName = 0;
constexpr size_t kMaxLabelLength = 63;

// A bounds-checked cursor over one length-delimited structure. Every read first asks `has(n)`;
// the structure is already complete in memory, so running short is always malformation.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  [[nodiscard]] bool has(size_t n) const { return bytes_.size() - pos_ >= n; }
  [[nodiscard]] bool empty() const { return pos_ == bytes_.size(); }
  uint8_t u8() { return bytes_[pos_++]; }
  uint16_t u16() {
    const auto v = static_cast<uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return v;
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

PeekResult malformed(std::string_view why) { return PeekResult{PeekStatus::kMalformed, {}, why}; }

bool is_host_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

// Validates and normalises one HostName (RFC 6066 §3); returns a reason on failure.
std::string_view read_host_name(std::span<const uint8_t> raw, std::string& out) {
  if (raw.empty()) return "empty SNI host name";
  if (raw.size() > kMaxSniLength) return "SNI host name longer than 255 bytes";
  // RFC 6066 forbids the trailing dot, but some clients send one; the DNS side has no dot either,
  // so both forms must compare equal.
  if (raw.back() == '.') raw = raw.first(raw.size() - 1);
  if (raw.empty()) return "SNI host name is only a dot";
  size_t label = 0;
  for (const uint8_t c : raw) {
    if (!is_host_char(c)) return "invalid byte in SNI host name";
    if (c == '.') {
      if (label == 0) return "empty label in SNI host name";
      label = 0;
    } else if (++label > kMaxLabelLength) {
      return "SNI label longer than 63 bytes";
    }
  }
  if (label == 0) return "empty label in SNI host name";
  out.reserve(raw.size());
  for (const uint8_t c : raw) {
    out.push_back(static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c));
  }
  return {};
}

// extension_data of server_name: ServerNameList, which must hold exactly one host_name.
std::string_view read_server_name(std::span<const uint8_t> data, std::string& out) {
  Reader r(data);
  if (!r.has(2)) return "truncated server_name list";
  const uint16_t list_len = r.u16();
  if (list_len == 0) return "empty server_name list";
  if (!r.has(list_len)) return "server_name list overruns extension";
  Reader list(r.take(list_len));
  if (!r.empty()) return "bytes after server_name list";
  if (!list.has(3)) return "truncated server_name entry";
  // Only host_name is defined, and other types have no known length layout: refuse them rather
  // than guess (OpenSSL does the same).
  if (list.u8() != kNameTypeHostName) return "server_name entry is not host_name";
  const uint16_t name_len = list.u16();
  if (!list.has(name_len)) return "host_name overruns server_name list";
  const auto name = list.take(name_len);
  if (!list.empty()) return "more than one server_name entry";
  return read_host_name(name, out);
}

PeekResult parse_client_hello(std::span<const uint8_t> body) {
  Reader r(body);
  if (!r.has(2 + kRandomSize)) return malformed("truncated ClientHello");
  if (r.u8() != kVersionMajor) return malformed("ClientHello version is not 3.x");
  r.u8();  // minor: anything, the real version lives in supported_versions for TLS 1.3
  r.take(kRandomSize);

  if (!r.has(1)) return malformed("truncated session id");
  const uint8_t session_len = r.u8();
  if (session_len > kMaxSessionIdSize) return malformed("session id longer than 32 bytes");
  if (!r.has(session_len)) return malformed("session id overruns ClientHello");
  r.take(session_len);

  if (!r.has(2)) return malformed("truncated cipher suites");
  const uint16_t suites_len = r.u16();
  if (suites_len == 0 || suites_len % 2 != 0) return malformed("bad cipher suites length");
  if (!r.has(suites_len)) return malformed("cipher suites overrun ClientHello");
  r.take(suites_len);

  if (!r.has(1)) return malformed("truncated compression methods");
  const uint8_t compression_len = r.u8();
  if (compression_len == 0) return malformed("no compression methods");
  if (!r.has(compression_len)) return malformed("compression methods overrun ClientHello");
  r.take(compression_len);

  // Pre-extension ClientHellos (RFC 5246 §7.4.1.2) simply end here.
  if (r.empty()) return PeekResult{PeekStatus::kNoSni, {}, {}};

  if (!r.has(2)) return malformed("truncated extensions length");
  const uint16_t extensions_len = r.u16();
  if (!r.has(extensions_len)) return malformed("extensions overrun ClientHello");
  Reader extensions(r.take(extensions_len));
  if (!r.empty()) return malformed("bytes after extensions");

  PeekResult result{PeekStatus::kNoSni, {}, {}};
  bool seen_server_name = false;
  while (!extensions.empty()) {
    if (!extensions.has(4)) return malformed("truncated extension header");
    const uint16_t type = extensions.u16();
    const uint16_t len = extensions.u16();
    if (!extensions.has(len)) return malformed("extension overruns extension block");
    const auto data = extensions.take(len);
    if (type != kExtensionServerName) continue;
    // Two server_name extensions could be read differently by us and by the upstream server
    // (first wins vs. last wins): a classic way to smuggle a second host past a policy check.
    if (seen_server_name) return malformed("duplicate server_name extension");
    seen_server_name = true;
    if (auto why = read_server_name(data, result.sni); !why.empty()) return malformed(why);
    result.status = PeekStatus::kSni;
  }
  return result;
}

}  // namespace

PeekResult peek_client_hello(std::span<const uint8_t> bytes) {
  // Judge each header byte as soon as it arrives, so non-TLS and junk are reported without
  // waiting for bytes that may never come.
  if (bytes.empty()) return PeekResult{};
  if (bytes[0] != kContentTypeHandshake) {
    return PeekResult{PeekStatus::kNotTls, {}, "not a TLS handshake record"};
  }
  if (bytes.size() >= 2 && bytes[1] != kVersionMajor) return malformed("record version is not 3.x");
  if (bytes.size() >= 3 && bytes[2] > kMaxVersionMinor) return malformed("unknown record version");
  if (bytes.size() < kRecordHeaderSize) return PeekResult{};

  const size_t record_len = (size_t{bytes[3]} << 8) | bytes[4];
  // Also rules out a record too short for the handshake header that parsing relies on below.
  if (record_len < kHandshakeHeaderSize) return malformed("record shorter than handshake header");
  if (record_len > kMaxRecordPayload) return malformed("record longer than 16384 bytes");

  const auto available = bytes.subspan(kRecordHeaderSize);
  if (!available.empty() && available[0] != kHandshakeClientHello) {
    return malformed("first handshake message is not ClientHello");
  }
  if (available.size() >= kHandshakeHeaderSize) {
    const size_t hello_len =
        (size_t{available[1]} << 16) | (size_t{available[2]} << 8) | available[3];
    if (hello_len + kHandshakeHeaderSize > record_len) {
      return malformed("ClientHello spans more than one record");
    }
    if (hello_len + kHandshakeHeaderSize < record_len) {
      return malformed("bytes after ClientHello in its record");
    }
  }
  if (available.size() < record_len) return PeekResult{};

  // Anything after the first record (there should be nothing before the server answers) is left
  // alone for the caller to forward.
  return parse_client_hello(
      available.subspan(kHandshakeHeaderSize, record_len - kHandshakeHeaderSize));
}

}  // namespace openshell::tls
