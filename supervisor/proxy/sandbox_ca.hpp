// The sandbox's own certificate authority (DESIGN.md §5; issue 15 item 1). Made when the
// supervisor starts: an ECDSA P-256 key that exists only in this process's memory (never in a
// file, never shared with another sandbox) and its self-signed certificate, which the sandbox
// trusts (/etc/openshell-tls). For each host the agent reaches through TLS termination it mints
// a leaf certificate on first use (SAN: that host; valid for a day) and keeps it in a bounded
// cache; all leaves share one key of their own, made with the CA.
#pragma once

#include <openssl/ossl_typ.h>

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/result.hpp"

namespace openshell::supervisor::proxy {

struct OpenSslRelease {
  void operator()(EVP_PKEY* key) const;
  void operator()(X509* cert) const;
};
using PrivateKey = std::unique_ptr<EVP_PKEY, OpenSslRelease>;
// OpenSSL's first queued error as ours, "what: reason"; the queue is cleared.
Error openssl_error(const std::string& what);
using Certificate = std::unique_ptr<X509, OpenSslRelease>;

// A leaf: its certificate and the key it was issued for (shared by every leaf of a CA).
struct Leaf {
  Certificate certificate;
  EVP_PKEY* key = nullptr;  // the CA's leaf key: lives as long as the CA
  std::chrono::system_clock::time_point not_after;
};

class SandboxCa {
 public:
  static constexpr size_t kMaxLeaves = 256;
  static constexpr auto kLeafLifetime = std::chrono::hours(24);
  // A leaf with less than this left is minted again.
  static constexpr auto kLeafRenewal = std::chrono::hours(1);

  // `sandbox` names it in the certificate's subject.
  static Result<std::unique_ptr<SandboxCa>> create(const std::string& sandbox);

  // The CA certificate, PEM: what the sandbox trusts. Never the key.
  [[nodiscard]] const std::string& certificate_pem() const { return ca_pem_; }
  [[nodiscard]] X509* certificate() const { return ca_cert_.get(); }

  // The leaf for `host` (a DNS name, or an IPv4/IPv6 literal: then an IP SAN), from the cache
  // or minted now (the least recently used goes when kMaxLeaves are kept).
  Result<std::shared_ptr<const Leaf>> leaf_for(std::string_view host);
  [[nodiscard]] size_t cached() const { return leaves_.size(); }

 private:
  SandboxCa() = default;
  Result<std::shared_ptr<const Leaf>> mint(const std::string& host);

  PrivateKey ca_key_;
  Certificate ca_cert_;
  std::string ca_pem_;
  PrivateKey leaf_key_;
  // Most recently used first.
  std::list<std::pair<std::string, std::shared_ptr<const Leaf>>> order_;
  std::unordered_map<std::string, decltype(order_)::iterator> leaves_;
};

}  // namespace openshell::supervisor::proxy
