// DNS wire format for the supervisor's policy DNS (DESIGN.md §4): parse one query from a
// sandboxed (untrusted) client, and build the few responses that server sends. RFC 1035, RFC 3596
// (AAAA), RFC 6891 (EDNS(0) OPT).
//
// The parser accepts only the narrow shape a stub resolver sends: one question, no answer or
// authority records, at most one additional record which must be an EDNS OPT. Anything else is an
// Error and the server drops the packet without a reply; a spoofed or garbage packet must not earn
// an answer (and so cannot be used to reflect traffic). Nothing is allocated in proportion to an
// attacker-chosen count: a name is at most 255 wire bytes, and the only loop over a count walks
// EDNS options inside an already length-checked record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/cidr.hpp"
#include "core/result.hpp"

namespace openshell::dns {

inline constexpr size_t kHeaderSize = 12;
// Larger than any query a stub sends, even with EDNS options (cookies, padding to 468).
inline constexpr size_t kMaxQuerySize = 4096;
inline constexpr size_t kMaxNameWireLength = 255;  // RFC 1035 §2.3.4, length octets included
inline constexpr size_t kMaxLabelLength = 63;
// Responses carry at most this many address records; the proxy dials only addresses it checked,
// so a short list costs the client nothing.
inline constexpr size_t kMaxAnswers = 16;
// Response size without EDNS (RFC 1035 §4.2.1); EDNS raises it to the client's advertised size,
// capped at kMaxQuerySize.
inline constexpr size_t kClassicUdpSize = 512;
// The UDP payload size our OPT record advertises (the DNS Flag Day 2020 value).
inline constexpr uint16_t kAdvertisedUdpSize = 1232;

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for CD).
inline constexpr uint16_t kFlagQr = 0x8000;
inline constexpr uint16_t kOpcodeMask = 0x7800;
inline constexpr uint16_t kFlagAa = 0x0400;
inline constexpr uint16_t kFlagTc = 0x0200;
inline constexpr uint16_t kFlagRd = 0x0100;
inline constexpr uint16_t kFlagRa = 0x0080;
inline constexpr uint16_t kFlagCd = 0x0010;
inline constexpr uint16_t kRcodeMask = 0x000F;

enum class Rcode : uint8_t {
  kNoError = 0,
  kServFail = 2,
  kNxDomain = 3,
  kRefused = 5,
};

struct Question {
  std::string name;  // lower-cased, no trailing dot; "" is the root
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

// What the client's EDNS OPT record said (RFC 6891 §6.1.3).
struct Edns {
  uint16_t udp_payload_size = 0;  // as sent; responses treat < 512 as 512
  bool dnssec_ok = false;         // the DO bit, copied into the response (RFC 3225 §3)
};

struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;
  Question question;
  // The name exactly as sent (same labels as question.name, original case). Responses echo it so
  // that resolvers using DNS 0x20 case randomisation accept them. May be left empty in a
  // hand-built Query; question.name is then echoed.
  std::string name_as_sent;
  std::optional<Edns> edns;
};

// Parses a query received over UDP (or over TCP without its two-byte length prefix).
// Rejects: fewer than 12 or more than kMaxQuerySize bytes; QR set; OPCODE other than QUERY; TC
// set; QDCOUNT != 1, ANCOUNT != 0, NSCOUNT != 0, ARCOUNT > 1; a compression pointer or reserved
// label type in the question name (a query never needs one, and refusing them removes pointer
// loops altogether); a label over 63 bytes; a name over 255 wire bytes; a label byte outside
// [A-Za-z0-9-_] (so no NUL, no dot inside a label, no spaces or non-ASCII); an additional record
// that is not a well-formed OPT with root owner and EDNS version 0; bytes after the last record.
// Error::context is a short reason, for debug logging only.
[[nodiscard]] Result<Query> parse_query(std::span<const uint8_t> packet);

// Response builders. Each echoes the id, opcode, RD and CD bits and the question (case as sent),
// sets QR and RA, and includes an OPT record when the query had one. Each returns an empty
// vector if the Query cannot be encoded (a hand-built name that parse_query would have refused).
//
// NOERROR with one A record per IPv4 address when qtype is A, or one AAAA record per IPv6 address
// when qtype is AAAA, class IN only; owner names are compression pointers to the question. At most
// kMaxAnswers records, and fewer if needed to keep the message within 512 bytes (or the client's
// EDNS size): later addresses are left out rather than setting TC, since a TCP retry would get
// the same pinned list. With no matching address (any other qtype, or only addresses of the
// other family) this is the same as build_nodata. AA is set: the policy DNS is the authority for
// the sandbox's view of the world. ttl is clamped to 2^31-1 (RFC 2181 §8).
[[nodiscard]] std::vector<uint8_t> build_answer(const Query& query,
                                                std::span<const IpAddress> addrs, uint32_t ttl);
// NXDOMAIN, AA set, no SOA: without an SOA resolvers do not cache the denial (RFC 2308 §5), so a
// policy reload that allows the name takes effect at once.
[[nodiscard]] std::vector<uint8_t> build_nxdomain(const Query& query);
// NOERROR, AA set, no records: the name exists but has no data of this type.
[[nodiscard]] std::vector<uint8_t> build_nodata(const Query& query);
[[nodiscard]] std::vector<uint8_t> build_refused(const Query& query);
[[nodiscard]] std::vector<uint8_t> build_servfail(const Query& query);

}  // namespace openshell::dns
