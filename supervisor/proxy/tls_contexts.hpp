// The two TLS sides of termination (DESIGN.md §5; issue 15 items 1-2): toward the agent, a
// server that presents the sandbox CA's leaf for the host it asked for; toward the real host, a
// client that verifies the host's certificate against the host's roots plus operator-named
// extra roots, with the name checked. Both speak TLS 1.2 or later and offer ALPN http/1.1 only
// (inspection is HTTP/1.1). Which host a connection is for is the proxy's to decide before the
// handshake (the CONNECT target, or the ClientHello's SNI peeked from a captured connection).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "supervisor/proxy/sandbox_ca.hpp"

namespace openshell::supervisor::proxy {

struct SslRelease {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslContext = std::unique_ptr<SSL_CTX, SslRelease>;
using SslConnection = std::unique_ptr<SSL, SslRelease>;

// The agent-facing context: no certificate of its own (each connection gets its leaf).
Result<SslContext> make_agent_context();
// `ssl` (of the agent context) presents `ca`'s leaf for `host`.
Status present_leaf(SSL* ssl, SandboxCa& ca, std::string_view host);
// A connection of `ctx` that presents `ca`'s leaf for `host`.
Result<SslConnection> agent_connection(SSL_CTX* ctx, SandboxCa& ca, std::string_view host);

// Every certificate of each PEM file; a file that cannot be read or holds none is an error
// naming it.
Result<std::vector<Certificate>> load_roots(const std::vector<std::string>& files);
// The upstream context: the host's roots (its hashed directory where it has one, read as chains
// need them), plus `extra_roots`.
Result<SslContext> make_upstream_context(const std::vector<Certificate>& extra_roots);

// `ssl` (of the upstream context) is for `host`: SNI set (for a name), the certificate required
// to verify and to name `host` (DNS name or IP address).
Status expect_host(SSL* ssl, std::string_view host);
// A connection of `ctx` to `host`, as expect_host sets it up.
Result<SslConnection> upstream_connection(SSL_CTX* ctx, std::string_view host);
// Why `ssl`'s peer was not trusted, for the 502 body and the event ("" when it was).
std::string verification_failure(const SSL* ssl);

// What one sandbox's proxy terminates TLS with: its CA, made with the sandbox, and the two
// contexts, made on first use (OpenSSL's contexts cost ~1 ms of CPU each at start: a sandbox
// that never inspects a connection never pays it). Used on the proxy's thread only.
class Termination {
 public:
  // Makes the CA for `sandbox`, and reads every extra root file now (an error names the first
  // that holds no certificate: never a silently weaker trust later).
  static Result<std::shared_ptr<Termination>> make(const std::string& sandbox,
                                                   const std::vector<std::string>& extra_ca_files);
  [[nodiscard]] SandboxCa& ca() { return *ca_; }
  // The agent-facing and the upstream context, made on the first call.
  Result<boost::asio::ssl::context*> agent();
  Result<boost::asio::ssl::context*> upstream();

 private:
  Termination() = default;
  std::unique_ptr<SandboxCa> ca_;
  std::vector<Certificate> extra_roots_;
  std::optional<boost::asio::ssl::context> agent_;
  std::optional<boost::asio::ssl::context> upstream_;
};

}  // namespace openshell::supervisor::proxy
