#include "supervisor/proxy/sandbox_ca.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "core/cidr.hpp"

namespace openshell::supervisor::proxy {

void OpenSslRelease::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
void OpenSslRelease::operator()(X509* cert) const { X509_free(cert); }

Error openssl_error(const std::string& what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char text[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  return Error::invalid(what + ": " + text);
}

namespace {

Result<PrivateKey> p256_key() {
  PrivateKey key(EVP_EC_gen("P-256"));
  if (!key) return openssl_error("making an ECDSA P-256 key");
  return key;
}

// A random positive 128-bit serial: unique enough that two leaves never share one.
bool set_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

bool add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool set_name(X509_NAME* name, const std::string& common_name) {
  return X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>("openshell"), -1, -1,
                                    0) == 1 &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                    -1, 0) == 1;
}

// Valid from an hour ago (clocks differ a little between a sandbox's clients and us) for
// `lifetime`.
bool set_validity(X509* cert, std::chrono::seconds lifetime) {
  return X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr &&
         X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(lifetime.count())) != nullptr;
}

std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  std::string out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

}  // namespace

Result<std::unique_ptr<SandboxCa>> SandboxCa::create(const std::string& sandbox) {
  std::unique_ptr<SandboxCa> ca(new SandboxCa);
  auto key = p256_key();
  if (!key) return key.error();
  auto leaf_key = p256_key();
  if (!leaf_key) return leaf_key.error();
  Certificate cert(X509_new());
  if (!cert) return openssl_error("making the CA certificate");
  X509* c = cert.get();
  // The CA outlives any sandbox we expect (a year); its key dies with the supervisor.
  const bool ok = X509_set_version(c, 2) == 1 && set_serial(c) &&
                  set_validity(c, std::chrono::hours(24 * 365)) &&
                  set_name(X509_get_subject_name(c), "openshell sandbox CA (" + sandbox + ")") &&
                  X509_set_issuer_name(c, X509_get_subject_name(c)) == 1 &&
                  X509_set_pubkey(c, key->get()) == 1 &&
                  add_extension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
                  add_extension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
                  add_extension(c, c, NID_subject_key_identifier, "hash") &&
                  X509_sign(c, key->get(), EVP_sha256()) > 0;
  if (!ok) return openssl_error("making the CA certificate");
  ca->ca_pem_ = to_pem(c);
  if (ca->ca_pem_.empty()) return openssl_error("encoding the CA certificate");
  ca->ca_key_ = std::move(*key);
  ca->ca_cert_ = std::move(cert);
  ca->leaf_key_ = std::move(*leaf_key);
  return ca;
}

Result<std::shared_ptr<const Leaf>> SandboxCa::leaf_for(std::string_view host_view) {
  std::string host(host_view);
  for (auto& ch : host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (auto it = leaves_.find(host); it != leaves_.end()) {
    const auto leaf = it->second->second;
    if (leaf->not_after - std::chrono::system_clock::now() > kLeafRenewal) {
      order_.splice(order_.begin(), order_, it->second);
      return leaf;
    }
    order_.erase(it->second);
    leaves_.erase(it);
  }
  auto leaf = mint(host);
  if (!leaf) return leaf.error();
  order_.emplace_front(host, *leaf);
  leaves_[host] = order_.begin();
  while (leaves_.size() > kMaxLeaves) {
    leaves_.erase(order_.back().first);
    order_.pop_back();
  }
  return leaf;
}

Result<std::shared_ptr<const Leaf>> SandboxCa::mint(const std::string& host) {
  if (host.empty() || host.size() > 253)
    return Error::invalid("no certificate for host '" + host.substr(0, 64) + "'");
  for (const char ch : host) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) == 0 && c != '.' && c != '-' && c != '_' && c != ':' && c != '*')
      return Error::invalid("no certificate for host '" + host.substr(0, 64) + "'");
  }
  const bool ip = parse_ip(host).ok();
  Certificate cert(X509_new());
  if (!cert) return openssl_error("minting a certificate for " + host);
  X509* c = cert.get();
  const std::string san = (ip ? "IP:" : "DNS:") + host;
  const bool ok = X509_set_version(c, 2) == 1 && set_serial(c) && set_validity(c, kLeafLifetime) &&
                  set_name(X509_get_subject_name(c), host.size() <= 64 ? host : "openshell leaf") &&
                  X509_set_issuer_name(c, X509_get_subject_name(ca_cert_.get())) == 1 &&
                  X509_set_pubkey(c, leaf_key_.get()) == 1 &&
                  add_extension(c, ca_cert_.get(), NID_basic_constraints, "critical,CA:FALSE") &&
                  add_extension(c, ca_cert_.get(), NID_key_usage, "critical,digitalSignature") &&
                  add_extension(c, ca_cert_.get(), NID_ext_key_usage, "serverAuth") &&
                  add_extension(c, ca_cert_.get(), NID_subject_alt_name, san.c_str()) &&
                  add_extension(c, ca_cert_.get(), NID_authority_key_identifier, "keyid:always") &&
                  X509_sign(c, ca_key_.get(), EVP_sha256()) > 0;
  if (!ok) return openssl_error("minting a certificate for " + host);
  auto leaf = std::make_shared<Leaf>();
  leaf->certificate = std::move(cert);
  leaf->key = leaf_key_.get();
  leaf->not_after = std::chrono::system_clock::now() + kLeafLifetime;
  return std::shared_ptr<const Leaf>(std::move(leaf));
}

}  // namespace openshell::supervisor::proxy
