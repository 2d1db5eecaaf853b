// libFuzzer target: DNS query bytes -> parse_query, then the response builders. The parser must
// never crash or over-read, whatever the bytes; every query it accepts must be answerable, and
// the question echoed in a response must parse back to the same question.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <utility>
#include <vector>

#include "core/cidr.hpp"
#include "core/dns_message.hpp"

namespace {

namespace dns = openshell::dns;

// The response's header and question, turned back into a bare query and parsed again.
void check_echo(const dns::Query& q, std::vector<uint8_t> response) {
  const size_t name_wire = q.name_as_sent.empty() ? 1 : q.name_as_sent.size() + 2;
  const size_t question_end = dns::kHeaderSize + name_wire + 4;
  if (response.size() < question_end) std::abort();
  if (response.size() > dns::kMaxQuerySize) std::abort();
  if ((response[2] & 0x80) == 0) std::abort();  // QR
  response[2] &= 0x7F;
  response[2] &= static_cast<uint8_t>(~0x04);  // AA
  response[3] = 0;                             // RA, Z, AD, CD, RCODE
  for (size_t i = 6; i < dns::kHeaderSize; ++i) response[i] = 0;
  response.resize(question_end);
  auto again = dns::parse_query(response);
  if (!again) std::abort();
  if (again->id != q.id || again->question.name != q.question.name ||
      again->name_as_sent != q.name_as_sent || again->question.qtype != q.question.qtype ||
      again->question.qclass != q.question.qclass) {
    std::abort();
  }
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> packet(data, size);
  auto parsed = dns::parse_query(packet);
  if (!parsed) {
    if (parsed.error().context.empty()) std::abort();
    return 0;
  }
  const dns::Query& q = *parsed;
  if (q.question.name.size() > 253 || q.name_as_sent.size() != q.question.name.size()) {
    std::abort();
  }

  // A fixed mixed list, longer than kMaxAnswers, so the caps are exercised.
  std::vector<openshell::IpAddress> addrs(20);
  for (size_t i = 0; i < addrs.size(); ++i) {
    addrs[i].v6 = (i % 2) == 1;
    addrs[i].bytes[0] = static_cast<uint8_t>(i + 1);
  }
  for (auto response : {dns::build_answer(q, addrs, 60), dns::build_nxdomain(q),
                        dns::build_nodata(q), dns::build_refused(q), dns::build_servfail(q)}) {
    check_echo(q, std::move(response));
  }
  return 0;
}
