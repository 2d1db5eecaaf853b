// Reads the SNI host name from the first bytes a client sends on a TLS connection, without
// terminating TLS (DESIGN.md §4: the proxy checks the SNI against the policy, and against the
// CONNECT line / policy-DNS answer, before it dials anything). RFC 8446 §4.1.2 and §5.1, RFC 6066
// §3. The bytes come from an untrusted sandboxed client: every length is checked against both the
// enclosing structure and the bytes present, nothing is allocated beyond the host name (at most
// 255 bytes), and nothing after the first record is read.
//
// The ClientHello must fit in the first TLS record (a record holds up to 16 KiB; browsers' hellos,
// post-quantum key shares included, are a few KiB). A ClientHello fragmented over several records
// is reported as kMalformed; the proxy treats that as a denial, never as "no SNI".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace openshell::tls {

inline constexpr size_t kRecordHeaderSize = 5;
inline constexpr size_t kMaxRecordPayload = 16384;  // 2^14, RFC 8446 §5.1
// The most bytes peek_client_hello can ask for: a caller that holds this many and still gets
// kNeedMore has a bug; one that hits its own read cap earlier treats the connection as malformed.
inline constexpr size_t kMaxPeekBytes = kRecordHeaderSize + kMaxRecordPayload;
inline constexpr size_t kMaxSniLength = 255;

enum class PeekStatus {
  kNeedMore,   // a valid prefix so far; read more bytes and call again with all of them
  kNotTls,     // the first byte is not a handshake record (plain HTTP, SSH, SSLv2 hello, ...)
  kNoSni,      // a well-formed ClientHello without a server_name extension
  kSni,        // a well-formed ClientHello; `sni` holds the host name
  kMalformed,  // starts like TLS but breaks the rules above; the proxy denies the connection
};

struct PeekResult {
  PeekStatus status = PeekStatus::kNeedMore;
  // Lower-cased, one trailing dot removed; set only with kSni.
  std::string sni;
  // Why a kMalformed or kNotTls result was reached; a static string, for debug logs and tests.
  std::string_view reason;
};

// Call with every byte received so far (the caller keeps them and forwards them unchanged
// upstream once the connection is allowed). Accepted shape:
//   record: type 22, version 3.0-3.4 (0x0300..0x0304), length <= 16384;
//   handshake: type 1 (client_hello), length exactly filling the record;
//   ClientHello: legacy_version major 3, 32-byte random, session id <= 32 bytes, a non-empty even
//   cipher suite list, a non-empty compression method list, then either nothing (kNoSni) or an
//   extension block that exactly fills the rest of the message.
// server_name (type 0), when present, appears once and holds exactly one host_name entry of
// 1..255 bytes made only of letters, digits, '-', '_' and '.', with no empty label and no label
// over 63 bytes. Any NUL, control character, space or non-ASCII byte, a second server_name
// extension, or a second name in the list is kMalformed: a name that two parsers might read
// differently must not reach a policy decision.
[[nodiscard]] PeekResult peek_client_hello(std::span<const uint8_t> bytes);

}  // namespace openshell::tls
