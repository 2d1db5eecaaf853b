// Credential placeholders (DESIGN.md §5; issue 16, the pure part). A sandbox's environment holds
// "openshell:resolve:env:KEY" where a provider's secret would be; the proxy puts the secret in
// the placeholder's place in what leaves the sandbox, and only on an endpoint bound to that
// provider. Anything else fails closed: the request is refused (403
// credential_endpoint_mismatch) and nothing of it goes upstream.
//
// Pure: the caller says which secrets this endpoint may use (a Lookup) and where a text is
// from (a header value, a request target). No error or result here ever holds a secret: the
// key's name is what is reported.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace openshell::credentials {

inline constexpr std::string_view kPrefix = "openshell:resolve:env:";
inline constexpr size_t kMaxKeyLength = 128;

// A KEY: a letter or '_' first, then letters, digits and '_' (an environment variable's name),
// at most kMaxKeyLength.
[[nodiscard]] bool valid_key(std::string_view key);
// "openshell:resolve:env:KEY".
[[nodiscard]] std::string placeholder(std::string_view key);

// A secret may go where a header value goes, and in a URL (percent-encoded there): no NUL, CR,
// LF or other control byte but HT. Checked when a provider is stored; checked again here.
[[nodiscard]] Status valid_secret(std::string_view secret);

// The secret of KEY when this endpoint may use it, else nullopt (no provider has KEY, or its
// provider is not bound to this endpoint: the same refusal either way).
using Lookup = std::function<std::optional<std::string>(std::string_view key)>;

struct Resolved {
  std::string text;               // with every placeholder replaced
  std::vector<std::string> keys;  // the keys replaced, each once, in order of first use
};

// The keys of every placeholder in `text`, raw or percent-encoded ("openshell%3Aresolve%3A..."),
// each once, in order. Empty when there is none.
[[nodiscard]] std::vector<std::string> keys_in(std::string_view text);

// The keys of every placeholder in a header value: raw, percent-encoded, or inside a
// "Basic <base64>" credential.
[[nodiscard]] std::vector<std::string> keys_in_header(std::string_view value);

// A header value: each raw placeholder becomes its secret; "Basic <base64>" is decoded, its
// placeholders replaced, and encoded again. Error (naming the key) when a key's Lookup says no,
// or when a secret could not go into a header.
[[nodiscard]] Result<Resolved> resolve_header(std::string_view value, const Lookup& lookup);

// A request target ("/path?query"): each placeholder, raw or percent-encoded, in a path segment
// or a query name or value, becomes its secret, percent-encoded (all but A-Z a-z 0-9 - . _ ~).
[[nodiscard]] Result<Resolved> resolve_target(std::string_view target, const Lookup& lookup);

// A request body of an endpoint with request_body_credential_rewrite: each placeholder becomes
// its secret, written for the body's type: JSON-escaped in a JSON body, percent-encoded in a
// form body (application/x-www-form-urlencoded), as it is in any other text. The caller bounds
// the body (kMaxRewriteBody) and fixes its Content-Length.
enum class BodyKind { kJson, kForm, kText };
[[nodiscard]] BodyKind body_kind(std::string_view content_type);
inline constexpr size_t kMaxRewriteBody = 256 * 1024;
[[nodiscard]] Result<Resolved> resolve_body(std::string_view body, BodyKind kind,
                                            const Lookup& lookup);

}  // namespace openshell::credentials
