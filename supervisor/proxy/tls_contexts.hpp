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

// The upstream context: the host's default roots, plus every PEM file in `extra_ca_files`
// (each must load: a file that does not is an error naming it, not a silently weaker trust).
Result<SslContext> make_upstream_context(const std::vector<std::string>& extra_ca_files);
// `ssl` (of the upstream context) is for `host`: SNI set (for a name), the certificate required
// to verify and to name `host` (DNS name or IP address).
Status expect_host(SSL* ssl, std::string_view host);
// A connection of `ctx` to `host`, as expect_host sets it up.
Result<SslConnection> upstream_connection(SSL_CTX* ctx, std::string_view host);
// Why `ssl`'s peer was not trusted, for the 502 body and the event ("" when it was).
std::string verification_failure(const SSL* ssl);

// What one sandbox's proxy terminates TLS with: its CA and the two contexts, as Asio holds them.
struct Termination {
  Termination(std::unique_ptr<SandboxCa> authority, SslContext agent_side,
              SslContext upstream_side)
      : ca(std::move(authority)),
        agent(agent_side.release()),
        upstream(upstream_side.release()) {}
  std::unique_ptr<SandboxCa> ca;
  boost::asio::ssl::context agent;
  boost::asio::ssl::context upstream;
};
// Makes the CA for `sandbox` and both contexts; an extra root file that does not load is an
// error naming it.
Result<std::shared_ptr<Termination>> make_termination(const std::string& sandbox,
                                                      const std::vector<std::string>& extra_ca_files);

}  // namespace openshell::supervisor::proxy
