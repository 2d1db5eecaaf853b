#include "supervisor/proxy/tls_contexts.hpp"

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/cidr.hpp"

namespace openshell::supervisor::proxy {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// The agent's ALPN list must include http/1.1; we answer with it and nothing else (no h2: the
// inspection is HTTP/1.1). A client that offers none gets no ALPN, which is HTTP/1.1 as well.
int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                  unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof kAlpnHttp11, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The host's trusted roots. Where the host keeps them in a hashed directory (Debian's
// /etc/ssl/certs, SSL_CERT_DIR), each is read when a chain needs it; parsing the whole bundle
// (OpenSSL's default file) costs ~20 ms of CPU at every sandbox start, most of its start time.
// Without such a directory, the default file and directory as OpenSSL would use them.
Status load_host_roots(SSL_CTX* ctx) {
  const char* env = std::getenv(X509_get_default_cert_dir_env());
  const std::string dir = env != nullptr && *env != '\0' ? env : X509_get_default_cert_dir();
  bool hashed = false;
  if (DIR* d = ::opendir(dir.c_str()); d != nullptr) {
    // "5ad8a5d6.0": eight hex digits, a dot, a digit (what c_rehash and openssl rehash make).
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      if (name.size() >= 10 && name[8] == '.' &&
          std::all_of(name.begin(), name.begin() + 8,
                      [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) {
        hashed = true;
        break;
      }
    }
    ::closedir(d);
  }
  if (hashed ? SSL_CTX_load_verify_dir(ctx, dir.c_str()) != 1
             : SSL_CTX_set_default_verify_paths(ctx) != 1)
    return openssl_error("loading the host's certificate authorities");
  return {};
}

Status common_settings(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return openssl_error("setting the lowest TLS version");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  return {};
}

}  // namespace

Result<SslContext> make_agent_context() {
  SslContext ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return openssl_error("making the agent-facing TLS context");
  if (auto st = common_settings(ctx.get()); !st) return st.error();
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_http11, nullptr);
  // No session resumption across leaves: each connection is decided and keyed afresh.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

Status present_leaf(SSL* ssl, SandboxCa& ca, std::string_view host) {
  auto leaf = ca.leaf_for(host);
  if (!leaf) return leaf.error();
  if (SSL_use_certificate(ssl, (*leaf)->certificate.get()) != 1 ||
      SSL_use_PrivateKey(ssl, (*leaf)->key) != 1)
    return openssl_error("using the certificate for " + std::string(host));
  return {};
}

Result<SslConnection> agent_connection(SSL_CTX* ctx, SandboxCa& ca, std::string_view host) {
  SslConnection ssl(SSL_new(ctx));
  if (!ssl) return openssl_error("making a TLS connection");
  if (auto st = present_leaf(ssl.get(), ca, host); !st) return st.error();
  return ssl;
}

Result<SslContext> make_upstream_context(const std::vector<Certificate>& extra_roots) {
  SslContext ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return openssl_error("making the upstream TLS context");
  if (auto st = common_settings(ctx.get()); !st) return st.error();
  if (auto st = load_host_roots(ctx.get()); !st) return st.error();
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  for (const auto& root : extra_roots)
    if (X509_STORE_add_cert(store, root.get()) != 1) {
      // The same root twice (a file listed twice, or a root the host has) is no error.
      if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
        return openssl_error("trusting an extra certificate authority");
      ERR_clear_error();
    }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnHttp11, sizeof kAlpnHttp11) != 0)
    return openssl_error("offering ALPN http/1.1");
  return ctx;
}

Status expect_host(SSL* ssl, std::string_view host_view) {
  const std::string host(host_view);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (parse_ip(host).ok()) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
      return openssl_error("checking the certificate of " + host);
  } else {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str())) != 1 ||
        SSL_set1_host(ssl, host.c_str()) != 1)
      return openssl_error("checking the certificate of " + host);
  }
  return {};
}

Result<SslConnection> upstream_connection(SSL_CTX* ctx, std::string_view host) {
  SslConnection ssl(SSL_new(ctx));
  if (!ssl) return openssl_error("making a TLS connection");
  if (auto st = expect_host(ssl.get(), host); !st) return st.error();
  return ssl;
}

std::string verification_failure(const SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return "";
  return X509_verify_cert_error_string(result);
}

Result<std::vector<Certificate>> load_roots(const std::vector<std::string>& files) {
  std::vector<Certificate> roots;
  for (const auto& file : files) {
    BIO* in = BIO_new_file(file.c_str(), "r");
    if (in == nullptr) return openssl_error("reading the certificate authorities of " + file);
    STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(in, nullptr, nullptr, nullptr);
    BIO_free(in);
    const size_t before = roots.size();
    for (int i = 0; infos != nullptr && i < sk_X509_INFO_num(infos); ++i) {
      X509_INFO* info = sk_X509_INFO_value(infos, i);
      if (info->x509 == nullptr) continue;
      roots.emplace_back(info->x509);
      info->x509 = nullptr;  // ours now
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    ERR_clear_error();
    if (roots.size() == before) return Error::invalid(file + " holds no PEM certificate");
  }
  return roots;
}

Result<std::shared_ptr<Termination>> Termination::make(
    const std::string& sandbox, const std::vector<std::string>& extra_ca_files) {
  auto roots = load_roots(extra_ca_files);
  if (!roots) return roots.error();
  auto ca = SandboxCa::create(sandbox);
  if (!ca) return ca.error();
  std::shared_ptr<Termination> t(new Termination());
  t->ca_ = std::move(*ca);
  t->extra_roots_ = std::move(*roots);
  return t;
}

Result<boost::asio::ssl::context*> Termination::agent() {
  if (!agent_) {
    auto ctx = make_agent_context();
    if (!ctx) return ctx.error();
    agent_.emplace(ctx->release());
  }
  return &*agent_;
}

Result<boost::asio::ssl::context*> Termination::upstream() {
  if (!upstream_) {
    auto ctx = make_upstream_context(extra_roots_);
    if (!ctx) return ctx.error();
    upstream_.emplace(ctx->release());
  }
  return &*upstream_;
}

}  // namespace openshell::supervisor::proxy
