#include "core/dns_message.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using Catch::Matchers::Contains;
using openshell::IpAddress;
using openshell::dns::build_answer;
using openshell::dns::build_nodata;
using openshell::dns::build_nxdomain;
using openshell::dns::build_refused;
using openshell::dns::build_servfail;
using openshell::dns::parse_query;
using openshell::dns::Query;

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

// "a.bc" -> 01 'a' 02 'b' 'c' 00; "" -> 00. No validation: tests feed it bad labels on purpose.
Bytes wire_name(std::string_view dotted) {
  Bytes out;
  while (!dotted.empty()) {
    const size_t dot = dotted.find('.');
    const std::string_view label = dotted.substr(0, dot);
    out.push_back(static_cast<uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
    dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

Bytes opt_record(uint16_t udp_size, uint32_t ttl, const Bytes& rdata) {
  Bytes b{0};
  put16(b, 41);
  put16(b, udp_size);
  put32(b, ttl);
  put16(b, static_cast<uint16_t>(rdata.size()));
  b.insert(b.end(), rdata.begin(), rdata.end());
  return b;
}

// A query assembled field by field, so each test can break exactly one thing.
struct QueryBytes {
  uint16_t id = 0x1234;
  uint16_t flags = 0x0100;  // RD
  uint16_t qdcount = 1;
  uint16_t ancount = 0;
  uint16_t nscount = 0;
  uint16_t arcount = 0;
  Bytes name = wire_name("example.com");
  uint16_t qtype = 1;
  uint16_t qclass = 1;
  Bytes extra;  // whatever follows the question

  QueryBytes& with_opt(const Bytes& opt) {
    arcount = 1;
    extra = opt;
    return *this;
  }

  [[nodiscard]] Bytes build() const {
    Bytes b;
    for (uint16_t v : {id, flags, qdcount, ancount, nscount, arcount}) put16(b, v);
    b.insert(b.end(), name.begin(), name.end());
    put16(b, qtype);
    put16(b, qclass);
    b.insert(b.end(), extra.begin(), extra.end());
    return b;
  }
};

Query parse_ok(const Bytes& packet) {
  auto r = parse_query(packet);
  INFO((r.ok() ? std::string() : r.error().message()));
  REQUIRE(r.ok());
  return *r;
}

std::string reject_reason(const Bytes& packet) {
  auto r = parse_query(packet);
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().context.empty());
  return r.error().context;
}

// The test's own response decoder: independent of the code under test.
class Cursor {
 public:
  explicit Cursor(const Bytes& b) : b_(b) {}
  uint8_t u8() {
    REQUIRE(pos_ < b_.size());
    return b_[pos_++];
  }
  uint16_t u16() {
    const uint16_t hi = u8();
    return static_cast<uint16_t>((hi << 8) | u8());
  }
  uint32_t u32() {
    const uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  Bytes take(size_t n) {
    REQUIRE(b_.size() - pos_ >= n);
    Bytes out(b_.begin() + static_cast<ptrdiff_t>(pos_),
              b_.begin() + static_cast<ptrdiff_t>(pos_ + n));
    pos_ += n;
    return out;
  }
  [[nodiscard]] bool done() const { return pos_ == b_.size(); }

 private:
  const Bytes& b_;
  size_t pos_ = 0;
};

struct Record {
  uint16_t owner = 0;  // the compression pointer
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  Bytes rdata;
};

struct Response {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  std::string qname;  // dotted, case as on the wire
  uint16_t qtype = 0, qclass = 0;
  std::vector<Record> answers;
  bool has_opt = false;
  uint16_t opt_udp_size = 0;
  uint32_t opt_ttl = 0;

  [[nodiscard]] unsigned rcode() const { return flags & 0xF; }
  [[nodiscard]] bool qr() const { return (flags & 0x8000) != 0; }
  [[nodiscard]] bool aa() const { return (flags & 0x0400) != 0; }
  [[nodiscard]] bool tc() const { return (flags & 0x0200) != 0; }
  [[nodiscard]] bool rd() const { return (flags & 0x0100) != 0; }
  [[nodiscard]] bool ra() const { return (flags & 0x0080) != 0; }
  [[nodiscard]] bool cd() const { return (flags & 0x0010) != 0; }
};

Response decode(const Bytes& bytes) {
  REQUIRE(bytes.size() <= 4096);
  Cursor c(bytes);
  Response r;
  r.id = c.u16();
  r.flags = c.u16();
  r.qdcount = c.u16();
  r.ancount = c.u16();
  r.nscount = c.u16();
  r.arcount = c.u16();
  REQUIRE(r.qdcount == 1);
  REQUIRE(r.nscount == 0);
  for (uint8_t len = c.u8(); len != 0; len = c.u8()) {
    REQUIRE(len <= 63);
    if (!r.qname.empty()) r.qname += '.';
    const Bytes label = c.take(len);
    r.qname.append(label.begin(), label.end());
  }
  r.qtype = c.u16();
  r.qclass = c.u16();
  for (unsigned i = 0; i < r.ancount; ++i) {
    Record rr;
    rr.owner = c.u16();
    rr.type = c.u16();
    rr.klass = c.u16();
    rr.ttl = c.u32();
    rr.rdata = c.take(c.u16());
    r.answers.push_back(rr);
  }
  REQUIRE(r.arcount <= 1);
  if (r.arcount == 1) {
    REQUIRE(c.u8() == 0);
    REQUIRE(c.u16() == 41);
    r.has_opt = true;
    r.opt_udp_size = c.u16();
    r.opt_ttl = c.u32();
    REQUIRE(c.u16() == 0);
  }
  REQUIRE(c.done());
  return r;
}

IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress ip;
  ip.bytes = {a, b, c, d};
  return ip;
}

IpAddress v6(uint8_t last) {
  IpAddress ip;
  ip.v6 = true;
  ip.bytes = {0x20, 0x01, 0x0d, 0xb8};
  ip.bytes[15] = last;
  return ip;
}

Bytes bytes_of(const IpAddress& ip) { return Bytes(ip.bytes.begin(), ip.bytes.end()); }

}  // namespace

TEST_CASE("parse_query reads a plain A query", "[dns]") {
  const Query q = parse_ok(QueryBytes{}.build());
  CHECK(q.id == 0x1234);
  CHECK(q.flags == 0x0100);
  CHECK(q.question.name == "example.com");
  CHECK(q.question.qtype == openshell::dns::kTypeA);
  CHECK(q.question.qclass == openshell::dns::kClassIn);
  CHECK(q.name_as_sent == "example.com");
  CHECK_FALSE(q.edns.has_value());
}

TEST_CASE("parse_query folds case but remembers the name as sent", "[dns]") {
  QueryBytes qb;
  qb.name = wire_name("ExAmPle.COM");
  const Query q = parse_ok(qb.build());
  CHECK(q.question.name == "example.com");
  CHECK(q.name_as_sent == "ExAmPle.COM");
}

TEST_CASE("parse_query accepts underscores, digits, hyphens and the root name", "[dns]") {
  QueryBytes qb;
  qb.name = wire_name("_dmarc.x-1.Example.com");
  qb.qtype = 16;
  CHECK(parse_ok(qb.build()).question.name == "_dmarc.x-1.example.com");

  qb.name = wire_name("");
  qb.qtype = 2;
  CHECK(parse_ok(qb.build()).question.name.empty());
}

TEST_CASE("parse_query accepts names up to exactly 255 wire bytes", "[dns]") {
  // Four 61-byte labels (4 * 62 = 248) plus a 5-byte label (6) plus the root byte = 255.
  const std::string l61(61, 'a');
  const std::string name255 = l61 + "." + l61 + "." + l61 + "." + l61 + ".bcdef";
  QueryBytes qb;
  qb.name = wire_name(name255);
  REQUIRE(qb.name.size() == 255);
  CHECK(parse_ok(qb.build()).question.name == name255);

  qb.name = wire_name(name255 + "g");
  REQUIRE(qb.name.size() == 256);
  CHECK_THAT(reject_reason(qb.build()), Contains("255"));

  qb.name = wire_name(std::string(63, 'x') + ".com");
  CHECK(parse_ok(qb.build()).question.name.size() == 67);
}

TEST_CASE("A query round trip: answer echoes header and question, carries A records", "[dns]") {
  QueryBytes qb;
  qb.id = 0xBEEF;
  qb.name = wire_name("Api.GitHub.com");  // a 0x20-randomised name
  const Query q = parse_ok(qb.build());
  const IpAddress addrs[] = {v4(140, 82, 112, 5), v6(1), v4(140, 82, 112, 6)};
  const Response r = decode(build_answer(q, addrs, 60));

  CHECK(r.id == 0xBEEF);
  CHECK(r.qr());
  CHECK(r.aa());
  CHECK(r.ra());
  CHECK(r.rd());
  CHECK_FALSE(r.tc());
  CHECK((r.flags & 0x7800) == 0);  // opcode QUERY
  CHECK(r.rcode() == 0);
  CHECK(r.qname == "Api.GitHub.com");  // exact case echo, as 0x20 resolvers require
  CHECK(r.qtype == 1);
  CHECK(r.qclass == 1);
  CHECK(r.arcount == 0);
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].owner == 0xC00C);
  CHECK(r.answers[0].type == 1);
  CHECK(r.answers[0].klass == 1);
  CHECK(r.answers[0].ttl == 60);
  CHECK(r.answers[0].rdata == Bytes{140, 82, 112, 5});
  CHECK(r.answers[1].rdata == Bytes{140, 82, 112, 6});
}

TEST_CASE("AAAA round trip carries only IPv6 addresses", "[dns]") {
  QueryBytes qb;
  qb.qtype = 28;
  const Query q = parse_ok(qb.build());
  const IpAddress addrs[] = {v4(1, 2, 3, 4), v6(7), v6(8)};
  const Response r = decode(build_answer(q, addrs, 300));
  REQUIRE(r.answers.size() == 2);
  CHECK(r.answers[0].type == 28);
  CHECK(r.answers[0].rdata == bytes_of(v6(7)));
  CHECK(r.answers[1].rdata == bytes_of(v6(8)));
  CHECK(r.answers[1].ttl == 300);
}

TEST_CASE("build_answer with no address of the asked family is NODATA", "[dns]") {
  QueryBytes qb;
  qb.qtype = 28;
  const Query aaaa = parse_ok(qb.build());
  const IpAddress only_v4[] = {v4(1, 2, 3, 4)};
  const Bytes answer = build_answer(aaaa, only_v4, 60);
  CHECK(answer == build_nodata(aaaa));
  const Response r = decode(answer);
  CHECK(r.rcode() == 0);
  CHECK(r.aa());
  CHECK(r.answers.empty());

  // Other types (MX here) and other classes get no records either.
  qb.qtype = 15;
  CHECK(decode(build_answer(parse_ok(qb.build()), only_v4, 60)).answers.empty());
  qb.qtype = 1;
  qb.qclass = 3;  // CHAOS
  CHECK(decode(build_answer(parse_ok(qb.build()), only_v4, 60)).answers.empty());
}

TEST_CASE("error responses carry the right RCODE and flags", "[dns]") {
  QueryBytes qb;
  qb.flags = 0x0010;  // CD set, RD clear
  qb.name = wire_name("Blocked.Example");
  const Query q = parse_ok(qb.build());

  const Response nx = decode(build_nxdomain(q));
  CHECK(nx.rcode() == 3);
  CHECK(nx.aa());
  CHECK(nx.qr());
  CHECK(nx.ra());
  CHECK_FALSE(nx.rd());
  CHECK(nx.cd());
  CHECK(nx.id == 0x1234);
  CHECK(nx.qname == "Blocked.Example");
  CHECK(nx.answers.empty());

  const Response nodata = decode(build_nodata(q));
  CHECK(nodata.rcode() == 0);
  CHECK(nodata.aa());
  CHECK(nodata.answers.empty());

  const Response refused = decode(build_refused(q));
  CHECK(refused.rcode() == 5);
  CHECK_FALSE(refused.aa());

  const Response servfail = decode(build_servfail(q));
  CHECK(servfail.rcode() == 2);
  CHECK_FALSE(servfail.aa());
  CHECK(servfail.qname == "Blocked.Example");
}

TEST_CASE("answers are capped at 16 and at the response size limit", "[dns]") {
  std::vector<IpAddress> many4;
  std::vector<IpAddress> many6;
  for (uint8_t i = 0; i < 40; ++i) {
    many4.push_back(v4(10, 0, 0, i));
    many6.push_back(v6(i));
  }
  QueryBytes qb;
  const Response a = decode(build_answer(parse_ok(qb.build()), many4, 60));
  CHECK(a.answers.size() == openshell::dns::kMaxAnswers);
  CHECK(a.answers.back().rdata == Bytes{10, 0, 0, 15});

  // A long name leaves room for fewer AAAA records within 512 bytes; without EDNS the answer
  // is shortened, not truncated (TC stays clear).
  qb.qtype = 28;
  const std::string l61(61, 'a');
  qb.name = wire_name(l61 + "." + l61 + "." + l61 + "." + l61 + ".bcdef");
  const Bytes small = build_answer(parse_ok(qb.build()), many6, 60);
  CHECK(small.size() <= 512);
  const Response s = decode(small);
  CHECK_FALSE(s.tc());
  CHECK(s.answers.size() == (512 - 12 - 255 - 4) / 28);

  // With EDNS advertising 4096 all 16 fit.
  qb.with_opt(opt_record(4096, 0, {}));
  const Bytes big = build_answer(parse_ok(qb.build()), many6, 60);
  CHECK(big.size() > 512);
  CHECK(decode(big).answers.size() == openshell::dns::kMaxAnswers);

  // EDNS sizes below 512 mean 512 (RFC 6891 §6.2.5); the OPT record takes 11 of them.
  qb.with_opt(opt_record(100, 0, {}));
  const Bytes floor = build_answer(parse_ok(qb.build()), many6, 60);
  CHECK(floor.size() <= 512);
  CHECK(decode(floor).answers.size() == (512 - 12 - 255 - 4 - 11) / 28);
}

TEST_CASE("TTL is clamped to 2^31-1", "[dns]") {
  const IpAddress one[] = {v4(1, 1, 1, 1)};
  const Response r = decode(build_answer(parse_ok(QueryBytes{}.build()), one, 0xFFFFFFFF));
  REQUIRE(r.answers.size() == 1);
  CHECK(r.answers[0].ttl == 0x7FFFFFFF);
}

TEST_CASE("an EDNS OPT record is skipped, remembered and answered with OPT", "[dns]") {
  Bytes cookie;
  put16(cookie, 10);  // COOKIE option
  put16(cookie, 8);
  for (uint8_t i = 0; i < 8; ++i) cookie.push_back(i);
  QueryBytes qb;
  qb.with_opt(opt_record(1400, 0x00008000, cookie));  // DO set
  const Query q = parse_ok(qb.build());
  REQUIRE(q.edns.has_value());
  CHECK(q.edns->udp_payload_size == 1400);
  CHECK(q.edns->dnssec_ok);

  const IpAddress one[] = {v4(1, 1, 1, 1)};
  for (const Bytes& response : {build_answer(q, one, 5), build_nxdomain(q), build_refused(q)}) {
    const Response r = decode(response);
    CHECK(r.has_opt);
    CHECK(r.opt_udp_size == openshell::dns::kAdvertisedUdpSize);
    CHECK(r.opt_ttl == 0x00008000);  // version 0, ext RCODE 0, DO echoed
  }

  qb.with_opt(opt_record(512, 0, {}));
  const Query plain = parse_ok(qb.build());
  CHECK_FALSE(plain.edns->dnssec_ok);
  CHECK(decode(build_nodata(plain)).opt_ttl == 0);
}

TEST_CASE("malformed EDNS records are rejected", "[dns]") {
  QueryBytes qb;
  Bytes bad_option;
  put16(bad_option, 10);
  put16(bad_option, 9);  // claims 9 bytes, has 2
  put16(bad_option, 0);
  CHECK_THAT(reject_reason(qb.with_opt(opt_record(1232, 0, bad_option)).build()),
             Contains("option"));
  CHECK_THAT(reject_reason(qb.with_opt(opt_record(1232, 0, Bytes{0, 10, 0})).build()),
             Contains("option"));
  CHECK_THAT(reject_reason(qb.with_opt(opt_record(1232, 0x00010000, {})).build()),
             Contains("version"));

  Bytes not_opt = opt_record(1232, 0, {});
  not_opt[2] = 1;  // TYPE A
  CHECK_THAT(reject_reason(qb.with_opt(not_opt).build()), Contains("not OPT"));

  Bytes named = opt_record(1232, 0, {});
  named[0] = 1;  // owner is not the root
  CHECK_THAT(reject_reason(qb.with_opt(named).build()), Contains("root"));

  Bytes overrun = opt_record(1232, 0, {});
  overrun[10] = 4;  // RDLENGTH 4 with no data
  CHECK_THAT(reject_reason(qb.with_opt(overrun).build()), Contains("past end"));

  Bytes short_opt = opt_record(1232, 0, {});
  short_opt.pop_back();
  CHECK_THAT(reject_reason(qb.with_opt(short_opt).build()), Contains("past end"));

  // ARCOUNT 1 with nothing there.
  qb.with_opt({});
  CHECK_THAT(reject_reason(qb.build()), Contains("past end"));
}

TEST_CASE("parse_query rejects header shapes a stub never sends", "[dns]") {
  CHECK_THAT(reject_reason(Bytes(11, 0)), Contains("header"));
  CHECK_THAT(reject_reason(Bytes{}), Contains("header"));

  Bytes huge = QueryBytes{}.build();
  huge.resize(4097, 0);
  CHECK_THAT(reject_reason(huge), Contains("too large"));

  auto with = [](auto mutate) {
    QueryBytes qb;
    mutate(qb);
    return reject_reason(qb.build());
  };
  CHECK_THAT(with([](QueryBytes& q) { q.flags |= 0x8000; }), Contains("QR"));
  CHECK_THAT(with([](QueryBytes& q) { q.flags |= 0x0800; }), Contains("opcode"));  // IQUERY
  CHECK_THAT(with([](QueryBytes& q) { q.flags |= 0x2800; }), Contains("opcode"));  // UPDATE
  CHECK_THAT(with([](QueryBytes& q) { q.flags |= 0x0200; }), Contains("truncated"));
  CHECK_THAT(with([](QueryBytes& q) { q.qdcount = 0; }), Contains("QDCOUNT"));
  CHECK_THAT(with([](QueryBytes& q) { q.qdcount = 2; }), Contains("QDCOUNT"));
  CHECK_THAT(with([](QueryBytes& q) { q.ancount = 1; }), Contains("answer"));
  CHECK_THAT(with([](QueryBytes& q) { q.nscount = 1; }), Contains("authority"));
  CHECK_THAT(with([](QueryBytes& q) { q.arcount = 2; }), Contains("additional"));
  CHECK_THAT(with([](QueryBytes& q) { q.arcount = 0xFFFF; }), Contains("additional"));
}

TEST_CASE("parse_query rejects bad question names", "[dns]") {
  auto with_name = [](const Bytes& name) {
    QueryBytes qb;
    qb.name = name;
    return reject_reason(qb.build());
  };
  // A pointer back to the header, a self-pointer, a pointer after a label.
  CHECK_THAT(with_name(Bytes{0xC0, 0x0C}), Contains("compression"));
  CHECK_THAT(with_name(Bytes{0xC0, 0x00}), Contains("compression"));
  CHECK_THAT(with_name(Bytes{3, 'w', 'w', 'w', 0xC0, 0x0C}), Contains("compression"));
  // 01 and 10 label types (RFC 6891 extended label, obsolete binary labels).
  CHECK_THAT(with_name(Bytes{0x41, 0}), Contains("reserved"));
  CHECK_THAT(with_name(Bytes{0x80, 0}), Contains("reserved"));
  // 64-byte label: length octet 0x40 is the reserved-type bit pattern, so it cannot be encoded.
  CHECK_FALSE(parse_query([] {
                QueryBytes qb;
                qb.name = wire_name(std::string(64, 'a') + ".com");
                return qb.build();
              }())
                  .ok());

  for (const char bad : {'\0', '.', ' ', '*', '/', '\x7f', '\xC3', '\n', '@'}) {
    Bytes name{3, 'a', 'b', 'c', 3, 'c', 'o', 'm', 0};
    name[2] = static_cast<uint8_t>(bad);
    INFO(static_cast<int>(static_cast<uint8_t>(bad)));
    CHECK_THAT(with_name(name), Contains("invalid character"));
  }
}

TEST_CASE("parse_query rejects truncation and trailing bytes", "[dns]") {
  const Bytes full = QueryBytes{}.build();
  for (size_t n = 0; n < full.size(); ++n) {
    INFO(n);
    CHECK_FALSE(parse_query(Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(n))).ok());
  }
  Bytes label_past_end = QueryBytes{}.build();
  label_past_end.resize(14);  // header, length octet 7, one byte of "example"
  CHECK_THAT(reject_reason(label_past_end), Contains("past end"));

  Bytes no_class = full;
  no_class.resize(no_class.size() - 2);
  CHECK_THAT(reject_reason(no_class), Contains("question runs past end"));

  Bytes trailing = full;
  trailing.push_back(0);
  CHECK_THAT(reject_reason(trailing), Contains("trailing"));

  QueryBytes with_opt;
  with_opt.with_opt(opt_record(1232, 0, {}));
  Bytes after_opt = with_opt.build();
  CHECK(parse_query(after_opt).ok());
  after_opt.push_back(0xAA);
  CHECK_THAT(reject_reason(after_opt), Contains("trailing"));
  for (size_t n = 0; n + 1 < after_opt.size(); ++n) {
    INFO(n);
    CHECK_FALSE(
        parse_query(Bytes(after_opt.begin(), after_opt.begin() + static_cast<ptrdiff_t>(n))).ok());
  }
}

TEST_CASE("builders echo the query id unchanged for every id", "[dns]") {
  for (const uint16_t id : {0x0000, 0x0020, 0x2000, 0xFFFF, 0x8001}) {
    QueryBytes qb;
    qb.id = id;
    const Query q = parse_ok(qb.build());
    CHECK(decode(build_nxdomain(q)).id == id);
    CHECK(decode(build_answer(q, {}, 1)).id == id);
  }
}

TEST_CASE("builders on hand-built queries", "[dns]") {
  Query q;
  q.id = 7;
  q.question = {"Allowed.Example", 1, 1};  // no name_as_sent: question.name is echoed
  const IpAddress one[] = {v4(9, 9, 9, 9)};
  const Response r = decode(build_answer(q, one, 1));
  CHECK(r.qname == "Allowed.Example");
  CHECK(r.answers.size() == 1);

  // A name_as_sent that does not match the question is ignored.
  q.name_as_sent = "other.example";
  CHECK(decode(build_nxdomain(q)).qname == "Allowed.Example");

  // Names parse_query would refuse cannot be encoded: empty result, never a bad packet.
  std::string many_labels = "a";
  for (int i = 0; i < 127; ++i) many_labels += ".a";  // 128 labels: 257 wire bytes
  const std::vector<std::string> bad_names = {"a..b",
                                              ".a",
                                              "a.",
                                              std::string(64, 'x'),
                                              "a b.c",
                                              std::string("a\0b", 3),
                                              std::string(300, 'a'),
                                              many_labels};
  for (const std::string& bad : bad_names) {
    q.question.name = bad;
    q.name_as_sent.clear();
    INFO(bad);
    CHECK(build_nxdomain(q).empty());
    CHECK(build_answer(q, one, 1).empty());
  }
}

TEST_CASE("a response with its answers stripped parses back to the same question", "[dns]") {
  QueryBytes qb;
  qb.name = wire_name("MiXeD.example.ORG");
  qb.qtype = 28;
  qb.with_opt(opt_record(4096, 0, {}));
  const Query q = parse_ok(qb.build());
  const IpAddress addrs[] = {v6(1), v6(2)};
  Bytes response = build_answer(q, addrs, 60);
  // Turn the response back into a query: clear QR/AA/RA, drop everything after the question.
  response[2] = static_cast<uint8_t>(response[2] & 0x01);  // keep RD
  response[3] = 0;
  for (size_t i = 6; i < 12; ++i) response[i] = 0;
  response.resize(12 + q.name_as_sent.size() + 2 + 4);
  const Query again = parse_ok(response);
  CHECK(again.id == q.id);
  CHECK(again.question.name == q.question.name);
  CHECK(again.name_as_sent == q.name_as_sent);
  CHECK(again.question.qtype == q.question.qtype);
  CHECK(again.question.qclass == q.question.qclass);
}
