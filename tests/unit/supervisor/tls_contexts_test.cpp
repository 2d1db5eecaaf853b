#include "supervisor/proxy/tls_contexts.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

using namespace openshell::supervisor::proxy;

namespace {

// A handshake between `client` and `server` through a memory BIO pair: true when both finish.
bool handshake(SSL* client, SSL* server) {
  BIO* c_bio = nullptr;
  BIO* s_bio = nullptr;
  REQUIRE(BIO_new_bio_pair(&c_bio, 0, &s_bio, 0) == 1);
  SSL_set_bio(client, c_bio, c_bio);
  SSL_set_bio(server, s_bio, s_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  bool c_done = false, s_done = false;
  for (int i = 0; i < 50 && !(c_done && s_done); ++i) {
    for (auto [ssl, done] : {std::pair{client, &c_done}, std::pair{server, &s_done}}) {
      if (*done) continue;
      const int rc = SSL_do_handshake(ssl);
      if (rc == 1) {
        *done = true;
        continue;
      }
      const int err = SSL_get_error(ssl, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return false;
      }
    }
  }
  return c_done && s_done;
}

// A client that trusts only `ca`, for `host`.
SslConnection agent_side_client(SSL_CTX* ctx, SandboxCa& ca, const std::string& host) {
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.certificate());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  static const unsigned char alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
  SslConnection ssl(SSL_new(ctx));
  SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host.c_str()));
  SSL_set1_host(ssl.get(), host.c_str());
  return ssl;
}

std::string issuer_of_peer(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return "";
  char name[256];
  X509_NAME_oneline(X509_get_issuer_name(peer), name, sizeof name);
  return name;
}

std::string alpn_of(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace

TEST_CASE("tls: the agent side presents the sandbox CA's leaf, and speaks http/1.1 only") {
  auto ca = SandboxCa::create("s1");
  REQUIRE(ca.ok());
  auto agent_ctx = make_agent_context();
  REQUIRE(agent_ctx.ok());
  auto server = agent_connection(agent_ctx->get(), **ca, "api.example.com");
  REQUIRE(server.ok());
  SslContext client_ctx(SSL_CTX_new(TLS_client_method()));
  auto client = agent_side_client(client_ctx.get(), **ca, "api.example.com");
  REQUIRE(handshake(client.get(), server->get()));
  CHECK(SSL_get_verify_result(client.get()) == X509_V_OK);
  CHECK(issuer_of_peer(client.get()).find("openshell sandbox CA (s1)") != std::string::npos);
  CHECK(alpn_of(client.get()) == "http/1.1");  // h2 offered first, not taken

  // Another sandbox's client (trusting its own CA) does not trust this leaf.
  auto other = SandboxCa::create("s2");
  REQUIRE(other.ok());
  auto server2 = agent_connection(agent_ctx->get(), **ca, "api.example.com");
  REQUIRE(server2.ok());
  SslContext other_ctx(SSL_CTX_new(TLS_client_method()));
  auto stranger = agent_side_client(other_ctx.get(), **other, "api.example.com");
  CHECK_FALSE(handshake(stranger.get(), server2->get()));

  // TLS 1.1 and older are not spoken.
  auto server3 = agent_connection(agent_ctx->get(), **ca, "api.example.com");
  REQUIRE(server3.ok());
  SslContext old_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(old_ctx.get(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(old_ctx.get(), 0);
  auto old_client = agent_side_client(old_ctx.get(), **ca, "api.example.com");
  CHECK_FALSE(handshake(old_client.get(), server3->get()));
}

TEST_CASE("tls: upstream certificates verify against host roots plus named extra roots, by name") {
  // An "internal" upstream whose CA the host does not know: trusted only through the file.
  auto internal = SandboxCa::create("internal-test-ca");
  REQUIRE(internal.ok());
  char path[] = "/tmp/osh-ca-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << (*internal)->certificate_pem();
  auto upstream_ctx = make_agent_context();  // the upstream server's side, for the test
  REQUIRE(upstream_ctx.ok());

  auto roots = load_roots({path});
  REQUIRE(roots.ok());
  auto with_extra = make_upstream_context(*roots);
  REQUIRE(with_extra.ok());
  auto host_only = make_upstream_context(std::vector<Certificate>());
  REQUIRE(host_only.ok());

  auto try_connect = [&](SSL_CTX* ctx, const std::string& asked, const std::string& served) {
    auto server = agent_connection(upstream_ctx->get(), **internal, served);
    REQUIRE(server.ok());
    auto client = upstream_connection(ctx, asked);
    REQUIRE(client.ok());
    const bool ok = handshake(client->get(), server->get());
    return std::pair{ok, verification_failure(client->get())};
  };
  auto good = try_connect(with_extra->get(), "db.internal.test", "db.internal.test");
  CHECK(good.first);
  CHECK(good.second.empty());
  auto wrong_name = try_connect(with_extra->get(), "db.internal.test", "other.internal.test");
  CHECK_FALSE(wrong_name.first);
  CHECK(wrong_name.second == "hostname mismatch");
  auto unknown_ca = try_connect(host_only->get(), "db.internal.test", "db.internal.test");
  CHECK_FALSE(unknown_ca.first);
  CHECK(unknown_ca.second.find("issuer") != std::string::npos);
  auto by_address = try_connect(with_extra->get(), "192.0.2.9", "192.0.2.9");
  CHECK(by_address.first);

  // A file that does not load is an error naming it, never a weaker trust.
  std::remove(path);
  auto missing = load_roots({path});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message().find(path) != std::string::npos);
}

// The host's roots are looked up in its hashed directory (cheap at start) and still trusted:
// every root of the host's bundle verifies against the upstream context's store.
TEST_CASE("tls: the upstream context trusts the host's roots") {
  const char* bundle = "/etc/ssl/certs/ca-certificates.crt";
  BIO* in = BIO_new_file(bundle, "r");
  if (in == nullptr) FAIL("no host bundle at " << bundle << " (Debian's ca-certificates)");
  auto ctx = make_upstream_context(std::vector<Certificate>());
  REQUIRE(ctx.ok());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx->get());
  size_t roots = 0, verified = 0;
  while (X509* root = PEM_read_bio_X509(in, nullptr, nullptr, nullptr)) {
    ++roots;
    X509_STORE_CTX* check = X509_STORE_CTX_new();
    X509_STORE_CTX_init(check, store, root, nullptr);
    if (X509_verify_cert(check) == 1) ++verified;
    X509_STORE_CTX_free(check);
    X509_free(root);
  }
  BIO_free(in);
  ERR_clear_error();
  CHECK(roots > 50);
  // Expired roots may sit in a bundle; everything else is trusted.
  CHECK(verified + 5 >= roots);
}

TEST_CASE("tls: a sandbox's termination checks its extra roots at once, its contexts on use") {
  char path[] = "/tmp/osh-bad-ca-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << "not a certificate\n";
  auto bad = Termination::make("t1", {path});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == std::string(path) + " holds no PEM certificate");
  auto missing = Termination::make("t1", {"/nonexistent/ca.pem"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message().find("/nonexistent/ca.pem") != std::string::npos);

  auto internal = SandboxCa::create("internal");
  REQUIRE(internal.ok());
  std::ofstream(path) << (*internal)->certificate_pem();
  auto good = Termination::make("t1", {path});
  ::unlink(path);
  REQUIRE(good.ok());
  CHECK((*good)->ca().certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
  auto agent = (*good)->agent();
  auto upstream = (*good)->upstream();
  REQUIRE((agent.ok() && upstream.ok()));
  CHECK(*agent == *(*good)->agent());  // made once
  CHECK(*upstream != nullptr);
}
