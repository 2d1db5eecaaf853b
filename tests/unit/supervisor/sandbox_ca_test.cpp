#include "supervisor/proxy/sandbox_ca.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <ctime>

using namespace openshell::supervisor::proxy;

namespace {

// Whether `leaf` verifies against `ca` alone, for `host`, now.
bool verifies(X509* ca, X509* leaf, const std::string& host, bool ip = false) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (ip)
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}

Certificate from_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  Certificate cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

}  // namespace

TEST_CASE("sandbox CA: a self-signed P-256 CA whose PEM carries no key") {
  auto ca = SandboxCa::create("s1");
  REQUIRE(ca.ok());
  const std::string& pem = (*ca)->certificate_pem();
  CHECK(pem.starts_with("-----BEGIN CERTIFICATE-----"));
  CHECK(pem.find("PRIVATE KEY") == std::string::npos);
  Certificate cert = from_pem(pem);
  REQUIRE(cert);
  CHECK(X509_check_ca(cert.get()) == 1);
  CHECK(X509_check_issued(cert.get(), cert.get()) == X509_V_OK);
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  REQUIRE(pub != nullptr);
  CHECK(EVP_PKEY_is_a(pub, "EC"));
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(cert.get()), subject, sizeof subject);
  CHECK(std::string(subject).find("openshell sandbox CA (s1)") != std::string::npos);
}

TEST_CASE("sandbox CA: leaves verify for their host only, against their own CA only") {
  auto ca = SandboxCa::create("s1");
  auto other = SandboxCa::create("s2");
  REQUIRE(ca.ok());
  REQUIRE(other.ok());
  CHECK((*ca)->certificate_pem() != (*other)->certificate_pem());  // two sandboxes, two CAs
  auto leaf = (*ca)->leaf_for("API.Example.com");
  REQUIRE(leaf.ok());
  X509* cert = (*leaf)->certificate.get();
  CHECK(verifies((*ca)->certificate(), cert, "api.example.com"));
  CHECK_FALSE(verifies((*ca)->certificate(), cert, "evil.example.com"));
  CHECK_FALSE(verifies((*other)->certificate(), cert, "api.example.com"));
  CHECK(X509_check_ca(cert) == 0);
  CHECK(X509_check_private_key(cert, (*leaf)->key) == 1);
  // Short-lived: a day, give or take the hour of slack before now.
  time_t in_two_days = std::time(nullptr) + 2 * 24 * 3600;
  CHECK(X509_cmp_time(X509_get0_notAfter(cert), &in_two_days) < 0);
  // An address gets an IP SAN.
  auto by_ip = (*ca)->leaf_for("192.0.2.7");
  REQUIRE(by_ip.ok());
  CHECK(verifies((*ca)->certificate(), (*by_ip)->certificate.get(), "192.0.2.7", true));
  // Nothing odd is put in a certificate.
  CHECK_FALSE((*ca)->leaf_for("").ok());
  CHECK_FALSE((*ca)->leaf_for("a b").ok());
  CHECK_FALSE((*ca)->leaf_for("a,DNS:evil.com").ok());
}

TEST_CASE("sandbox CA: leaves are cached, at most kMaxLeaves, least recently used out") {
  auto ca = SandboxCa::create("s1");
  REQUIRE(ca.ok());
  auto first = (*ca)->leaf_for("h0.example");
  REQUIRE(first.ok());
  CHECK((*ca)->leaf_for("H0.example").value() == *first);  // the same one, host case aside
  for (size_t i = 1; i <= SandboxCa::kMaxLeaves; ++i) {
    REQUIRE((*ca)->leaf_for("h" + std::to_string(i) + ".example").ok());
    if (i == SandboxCa::kMaxLeaves / 2) REQUIRE((*ca)->leaf_for("h0.example").ok());  // used
  }
  CHECK((*ca)->cached() == SandboxCa::kMaxLeaves);
  CHECK((*ca)->leaf_for("h0.example").value() == *first);  // kept: used recently
  auto h1 = (*ca)->leaf_for("h1.example");                 // went: the least recently used
  REQUIRE(h1.ok());
  CHECK((*ca)->cached() == SandboxCa::kMaxLeaves);
}
