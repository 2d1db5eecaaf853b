#include "core/tls_peek.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using Catch::Matchers::Contains;
using openshell::tls::kMaxPeekBytes;
using openshell::tls::peek_client_hello;
using openshell::tls::PeekResult;
using openshell::tls::PeekStatus;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint16_t kServerName = 0;
constexpr uint16_t kSupportedVersions = 43;
constexpr uint16_t kKeyShare = 51;
constexpr uint16_t kPadding = 21;

// Captured from `openssl s_client -connect 127.0.0.1:PORT -servername example.test` (OpenSSL
// 3.0) against a local listener: a real TLS 1.3 ClientHello, 318 bytes.
const Bytes kOpensslHello = {
    0x16, 0x03, 0x01, 0x01, 0x39, 0x01, 0x00, 0x01, 0x35, 0x03, 0x03, 0x7f, 0x02, 0x48, 0x54, 0xbb,
    0x2b, 0xa9, 0xe3, 0xe0, 0x33, 0xde, 0x24, 0x1d, 0xea, 0xa8, 0xa1, 0x14, 0x5e, 0x00, 0x7c, 0x45,
    0x12, 0xbe, 0xb8, 0x0f, 0x92, 0xc2, 0x88, 0xcc, 0x28, 0x93, 0x71, 0x20, 0x72, 0x21, 0x27, 0xe6,
    0xab, 0x79, 0xc7, 0x8c, 0x4e, 0xbb, 0x39, 0x97, 0x58, 0xdb, 0x1f, 0x06, 0xb0, 0xad, 0xe7, 0x93,
    0x6a, 0x15, 0xb6, 0x61, 0x2a, 0xb8, 0xd4, 0x56, 0xc8, 0xbe, 0x8b, 0x83, 0x00, 0x3e, 0x13, 0x02,
    0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27,
    0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d,
    0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xae,
    0x00, 0x00, 0x00, 0x11, 0x00, 0x0f, 0x00, 0x00, 0x0c, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
    0x2e, 0x74, 0x65, 0x73, 0x74, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00,
    0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01,
    0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00,
    0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08,
    0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04,
    0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06,
    0x02, 0x00, 0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01, 0x00, 0x2d,
    0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x8e, 0x87,
    0x75, 0x36, 0xb8, 0x87, 0xfd, 0xe7, 0x4a, 0x51, 0x32, 0x79, 0x76, 0xdd, 0x5e, 0xfb, 0xad, 0xf0,
    0xdd, 0x95, 0x3f, 0x7d, 0x65, 0x20, 0x36, 0xa7, 0x3b, 0x0f, 0x27, 0xd3, 0x50, 0x16,
};

void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void put24(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 16));
  put16(b, v & 0xFFFF);
}

void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// server_name extension_data holding the given (type, name) entries.
Bytes server_name_list(const std::vector<std::pair<uint8_t, Bytes>>& entries) {
  Bytes list;
  for (const auto& [type, name] : entries) {
    list.push_back(type);
    put16(list, name.size());
    append(list, name);
  }
  Bytes data;
  put16(data, list.size());
  append(data, list);
  return data;
}

Bytes server_name(std::string_view host) { return server_name_list({{0, text(host)}}); }

// A ClientHello assembled field by field, so each test can break exactly one thing.
struct Hello {
  uint8_t record_type = 0x16;
  uint8_t record_major = 3;
  uint8_t record_minor = 1;
  uint8_t handshake_type = 1;
  Bytes version{3, 3};
  Bytes random = Bytes(32, 0x5A);
  Bytes session_id = Bytes(32, 0x22);
  Bytes cipher_suites{0x13, 0x01, 0x13, 0x02, 0xC0, 0x2F};
  Bytes compression{0};
  bool with_extensions = true;
  std::vector<std::pair<uint16_t, Bytes>> extensions{{kSupportedVersions, {2, 3, 4}},
                                                     {kKeyShare, Bytes(38, 0x33)}};

  Hello& add(uint16_t type, const Bytes& data) {
    extensions.emplace_back(type, data);
    return *this;
  }
  Hello& sni(std::string_view host) { return add(kServerName, server_name(host)); }

  [[nodiscard]] Bytes body() const {
    Bytes b = version;
    append(b, random);
    b.push_back(static_cast<uint8_t>(session_id.size()));
    append(b, session_id);
    put16(b, cipher_suites.size());
    append(b, cipher_suites);
    b.push_back(static_cast<uint8_t>(compression.size()));
    append(b, compression);
    if (with_extensions) {
      Bytes ext;
      for (const auto& [type, data] : extensions) {
        put16(ext, type);
        put16(ext, data.size());
        append(ext, data);
      }
      put16(b, ext.size());
      append(b, ext);
    }
    return b;
  }

  // Wraps a handshake body in its handshake and record headers.
  [[nodiscard]] Bytes wrap(const Bytes& hello_body) const {
    Bytes handshake{handshake_type};
    put24(handshake, hello_body.size());
    append(handshake, hello_body);
    Bytes rec{record_type, record_major, record_minor};
    put16(rec, handshake.size());
    append(rec, handshake);
    return rec;
  }

  [[nodiscard]] Bytes build() const { return wrap(body()); }
};

PeekResult peek(const Bytes& b) { return peek_client_hello(b); }

std::string malformed_reason(const Bytes& b) {
  const PeekResult r = peek(b);
  CHECK(r.status == PeekStatus::kMalformed);
  CHECK(r.sni.empty());
  CHECK_FALSE(r.reason.empty());
  return std::string(r.reason);
}

std::string sni_of(const Bytes& b) {
  const PeekResult r = peek(b);
  INFO(r.reason);
  REQUIRE(r.status == PeekStatus::kSni);
  return r.sni;
}

}  // namespace

TEST_CASE("peek reads the SNI from a hand-built ClientHello", "[tls]") {
  CHECK(sni_of(Hello{}.sni("example.test").build()) == "example.test");
  // Position among other extensions does not matter.
  Hello first;
  first.extensions.clear();
  first.sni("api.example.test").add(kSupportedVersions, {2, 3, 4});
  CHECK(sni_of(first.build()) == "api.example.test");
}

TEST_CASE("peek lower-cases the SNI and drops one trailing dot", "[tls]") {
  CHECK(sni_of(Hello{}.sni("ExAmPle.TEST").build()) == "example.test");
  CHECK(sni_of(Hello{}.sni("example.test.").build()) == "example.test");
  CHECK(sni_of(Hello{}.sni("_svc.x-1.example.test").build()) == "_svc.x-1.example.test");
  CHECK(sni_of(Hello{}.sni("localhost").build()) == "localhost");
}

TEST_CASE("peek reads the SNI from a real OpenSSL ClientHello", "[tls]") {
  const PeekResult r = peek(kOpensslHello);
  CHECK(r.status == PeekStatus::kSni);
  CHECK(r.sni == "example.test");
}

TEST_CASE("a ClientHello without server_name is kNoSni", "[tls]") {
  const PeekResult with_others = peek(Hello{}.build());
  CHECK(with_others.status == PeekStatus::kNoSni);
  CHECK(with_others.sni.empty());

  Hello empty_block;
  empty_block.extensions.clear();
  CHECK(peek(empty_block.build()).status == PeekStatus::kNoSni);

  Hello no_block;  // TLS 1.0-era: the message ends after compression methods
  no_block.with_extensions = false;
  CHECK(peek(no_block.build()).status == PeekStatus::kNoSni);

  Hello no_session;
  no_session.session_id.clear();
  CHECK(sni_of(no_session.sni("a.example").build()) == "a.example");
}

TEST_CASE("every strict prefix of a valid hello is kNeedMore", "[tls]") {
  for (const Bytes& hello : {Hello{}.sni("example.test").build(), Hello{}.build(), kOpensslHello}) {
    for (size_t n = 0; n < hello.size(); ++n) {
      INFO(n);
      const PeekResult r = peek(Bytes(hello.begin(), hello.begin() + static_cast<ptrdiff_t>(n)));
      CHECK(r.status == PeekStatus::kNeedMore);
      CHECK(r.sni.empty());
    }
    CHECK(peek(hello).status != PeekStatus::kNeedMore);
  }
}

TEST_CASE("bytes after the first record are not examined", "[tls]") {
  Bytes b = Hello{}.sni("example.test").build();
  append(b, text("\x17\x03\x03 garbage"));
  CHECK(sni_of(b) == "example.test");
}

TEST_CASE("non-TLS openings are kNotTls at the first byte", "[tls]") {
  for (const std::string_view s :
       {"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n", "G", "SSH-2.0-OpenSSH_9.2\r\n",
        "CONNECT example.test:443 HTTP/1.1\r\n"}) {
    INFO(s);
    CHECK(peek(text(s)).status == PeekStatus::kNotTls);
  }
  CHECK(peek(Bytes{0x80, 0x2E, 0x01, 0x03, 0x01}).status == PeekStatus::kNotTls);  // SSLv2
  CHECK(peek(Bytes{0x17, 0x03, 0x03, 0x00, 0x10}).status == PeekStatus::kNotTls);  // app data
  CHECK(peek(Bytes{0x00}).status == PeekStatus::kNotTls);
}

TEST_CASE("bad record and handshake headers are kMalformed without waiting", "[tls]") {
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x02}), Contains("version"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x05}), Contains("version"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x00}), Contains("shorter"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x03}), Contains("shorter"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x40, 0x01}), Contains("16384"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0xFF, 0xFF}), Contains("16384"));
  // ServerHello (2) where a ClientHello belongs.
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x40, 0x02}), Contains("ClientHello"));
  // A ClientHello that claims more than its record holds: fragmented over records, unsupported.
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x01, 0x00}),
             Contains("spans"));
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0xFF, 0xFF, 0xFF}),
             Contains("spans"));
  // A record with room to spare after the ClientHello.
  CHECK_THAT(malformed_reason(Bytes{0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x30}),
             Contains("after ClientHello"));

  // Record versions 3.0 through 3.4 are all accepted.
  for (const uint8_t minor : {0, 1, 2, 3, 4}) {
    Hello h;
    h.record_minor = minor;
    CHECK(sni_of(h.sni("example.test").build()) == "example.test");
  }
}

TEST_CASE("bad ClientHello bodies are kMalformed", "[tls]") {
  Hello h;
  h.sni("example.test");

  Hello v = h;
  v.version = {2, 0};
  CHECK_THAT(malformed_reason(v.build()), Contains("version"));

  Hello s = h;
  s.session_id = Bytes(33, 1);
  CHECK_THAT(malformed_reason(s.build()), Contains("session id"));

  Hello odd = h;
  odd.cipher_suites = {0x13, 0x01, 0x13};
  CHECK_THAT(malformed_reason(odd.build()), Contains("cipher"));
  Hello none = h;
  none.cipher_suites.clear();
  CHECK_THAT(malformed_reason(none.build()), Contains("cipher"));

  Hello nocomp = h;
  nocomp.compression.clear();
  CHECK_THAT(malformed_reason(nocomp.build()), Contains("compression"));

  // Too short for version and random.
  CHECK_THAT(malformed_reason(h.wrap(Bytes{3, 3, 0})), Contains("truncated"));

  // Length fields that overrun: patch the body directly.
  Bytes body = h.body();
  const size_t session_len_at = 2 + 32;
  Bytes overrun_session = body;
  overrun_session[session_len_at] = 32;
  overrun_session.resize(session_len_at + 1 + 10);
  CHECK_THAT(malformed_reason(h.wrap(overrun_session)), Contains("session id"));

  const size_t suites_len_at = session_len_at + 1 + 32;
  Bytes overrun_suites = body;
  overrun_suites[suites_len_at] = 0xFF;
  CHECK_THAT(malformed_reason(h.wrap(overrun_suites)), Contains("cipher"));

  const size_t ext_len_at = suites_len_at + 2 + 6 + 2;
  Bytes overrun_ext = body;
  overrun_ext[ext_len_at] = 0x7F;
  CHECK_THAT(malformed_reason(h.wrap(overrun_ext)), Contains("extensions overrun"));

  Bytes one_byte_ext_len = Bytes(body.begin(), body.begin() + static_cast<ptrdiff_t>(ext_len_at));
  one_byte_ext_len.push_back(0);
  CHECK_THAT(malformed_reason(h.wrap(one_byte_ext_len)), Contains("extensions length"));

  Bytes trailing = body;
  trailing.push_back(0);
  CHECK_THAT(malformed_reason(h.wrap(trailing)), Contains("after extensions"));

  // An extension whose length runs past the block; a block ending inside an extension header.
  Bytes bad_ext;
  put16(bad_ext, 4);  // block length
  put16(bad_ext, 0);  // server_name
  put16(bad_ext, 9);  // claims 9 bytes
  Bytes bad_ext_body(body.begin(), body.begin() + static_cast<ptrdiff_t>(ext_len_at));
  append(bad_ext_body, bad_ext);
  CHECK_THAT(malformed_reason(h.wrap(bad_ext_body)), Contains("extension overruns"));
  Bytes half_header(body.begin(), body.begin() + static_cast<ptrdiff_t>(ext_len_at));
  append(half_header, Bytes{0, 2, 0, 0});
  CHECK_THAT(malformed_reason(h.wrap(half_header)), Contains("extension header"));
}

TEST_CASE("a second server_name extension or entry is kMalformed", "[tls]") {
  CHECK_THAT(malformed_reason(Hello{}.sni("allowed.example").sni("evil.example").build()),
             Contains("duplicate"));
  CHECK_THAT(malformed_reason(Hello{}.sni("same.example").sni("same.example").build()),
             Contains("duplicate"));
  // An empty server_name extension is malformed in itself, whatever follows.
  CHECK_THAT(malformed_reason(Hello{}.add(kServerName, {}).sni("x.example").build()),
             Contains("server_name"));

  const Bytes two = server_name_list({{0, text("allowed.example")}, {0, text("evil.example")}});
  CHECK_THAT(malformed_reason(Hello{}.add(kServerName, two).build()), Contains("more than one"));
  const Bytes other_type = server_name_list({{1, text("allowed.example")}});
  CHECK_THAT(malformed_reason(Hello{}.add(kServerName, other_type).build()),
             Contains("not host_name"));
}

TEST_CASE("server_name list framing is checked", "[tls]") {
  auto with_data = [](const Bytes& data) {
    return malformed_reason(Hello{}.add(kServerName, data).build());
  };
  CHECK_THAT(with_data({}), Contains("truncated"));
  CHECK_THAT(with_data({0}), Contains("truncated"));
  CHECK_THAT(with_data({0, 0}), Contains("empty"));
  CHECK_THAT(with_data({0, 2, 0, 0}), Contains("truncated"));
  CHECK_THAT(with_data({0, 9, 0, 0, 1, 'a'}), Contains("overruns"));
  CHECK_THAT(with_data({0, 4, 0, 0, 9, 'a'}), Contains("overruns"));
  Bytes extra = server_name("a.example");
  extra.push_back(0);
  CHECK_THAT(with_data(extra), Contains("after server_name list"));
}

TEST_CASE("SNI host names with bad bytes or sizes are kMalformed", "[tls]") {
  auto bad = [](const Bytes& host) {
    return malformed_reason(Hello{}.add(kServerName, server_name_list({{0, host}})).build());
  };
  CHECK_THAT(bad({}), Contains("empty"));
  CHECK_THAT(bad(text(std::string_view("allowed.example\0.evil.example", 29))),
             Contains("invalid byte"));
  CHECK_THAT(bad(text(std::string_view("evil.example\0", 13))), Contains("invalid byte"));
  for (const uint8_t c :
       std::initializer_list<uint8_t>{0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x80, 0xC3, 0xFF,
                                      ' ', '/', ':', '@', '*', '%', '\\'}) {
    Bytes host = text("ab.example");
    host[1] = c;
    INFO(static_cast<int>(c));
    CHECK_THAT(bad(host), Contains("invalid byte"));
  }
  CHECK_THAT(bad(text(".")), Contains("dot"));
  CHECK_THAT(bad(text("a..example")), Contains("empty label"));
  CHECK_THAT(bad(text(".example")), Contains("empty label"));
  CHECK_THAT(bad(text("example..")), Contains("empty label"));
  CHECK_THAT(bad(text(std::string(64, 'a') + ".example")), Contains("63"));

  // 255 bytes is the limit, counted before the trailing dot is dropped.
  std::string name255;
  while (name255.size() < 255) name255 += "abcdefghi.";
  name255.resize(255);  // ends in a label character
  REQUIRE(name255.back() != '.');
  CHECK(sni_of(Hello{}.sni(name255).build()) == name255);
  CHECK_THAT(bad(text(name255 + "x")), Contains("255"));
  CHECK_THAT(bad(text(std::string(1000, 'a'))), Contains("255"));
}

TEST_CASE("a ClientHello filling a whole 16 KiB record is accepted", "[tls]") {
  Hello h;
  h.sni("big.example");
  const size_t base = h.build().size();
  // Pad so that the record payload is exactly 16384 bytes.
  h.add(kPadding, Bytes(openshell::tls::kMaxRecordPayload + 5 - base - 4, 0));
  const Bytes b = h.build();
  REQUIRE(b.size() == kMaxPeekBytes);
  CHECK(sni_of(b) == "big.example");
  CHECK(peek(Bytes(b.begin(), b.end() - 1)).status == PeekStatus::kNeedMore);

  h.extensions.back().second.push_back(0);  // one byte over
  CHECK_THAT(malformed_reason(h.build()), Contains("16384"));
}

TEST_CASE("single-byte mutations of a valid hello never crash or yield a bad SNI", "[tls]") {
  const Bytes base = Hello{}.sni("example.test").build();
  size_t sni = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    for (unsigned v = 0; v < 256; ++v) {
      Bytes m = base;
      m[i] = static_cast<uint8_t>(v);
      const PeekResult r = peek(m);
      if (r.status != PeekStatus::kSni) {
        CHECK(r.sni.empty());
        continue;
      }
      ++sni;
      REQUIRE_FALSE(r.sni.empty());
      REQUIRE(r.sni.size() <= 255);
      for (const char c : r.sni) {
        REQUIRE(
            ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'));
      }
    }
  }
  CHECK(sni > 0);
}
