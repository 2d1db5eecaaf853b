// libFuzzer target: the first bytes of a connection -> peek_client_hello. It must never crash or
// over-read; an SNI it reports must be a plain lower-case host name; and feeding the same bytes
// in pieces (as the proxy does while it reads) must never contradict the final answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/tls_peek.hpp"

namespace tls = openshell::tls;

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const tls::PeekResult full = tls::peek_client_hello(bytes);
  if (full.status == tls::PeekStatus::kSni) {
    if (full.sni.empty() || full.sni.size() > tls::kMaxSniLength) std::abort();
    for (const char c : full.sni) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
      if (!ok) std::abort();
    }
  } else if (!full.sni.empty()) {
    std::abort();
  }
  if (full.status == tls::PeekStatus::kNeedMore && size >= tls::kMaxPeekBytes) std::abort();

  // A prefix that already has a final answer must give the same answer with more bytes: the
  // proxy stops reading at the first final answer.
  for (size_t n = 0; n < size; n += 1 + n / 8) {
    const tls::PeekResult part = tls::peek_client_hello(bytes.first(n));
    if (part.status == tls::PeekStatus::kNeedMore) continue;
    if (part.status != full.status || part.sni != full.sni) std::abort();
  }
  return 0;
}
