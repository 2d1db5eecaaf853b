// The pure part of L7 inspection (DESIGN.md §3, §5; issue 15 item 10): what an HTTP/1.1 request
// is, canonically, and what an endpoint's rules say of it. No I/O and no parser of our own for
// the message itself (Boost.Beast parses it in the supervisor); these take what Beast hands
// over (the request target, the head's fields) plus the head's raw bytes for the framing checks
// a parser forgives.
//
// Semantics follow the policy language as OpenShell defines it (shared/reference census):
// methods compare case-insensitively and a GET rule admits HEAD; paths are canonicalised before
// matching, and a path glob's '*' stays within one segment while '**' crosses them (OpenShell's
// '*' crosses '/': ours is the stricter reading, so "/repos/*" never admits
// "/repos/a/b/collaborators"; query values have no segments, their globs are flat); a query matcher
// on an allow rule needs every value of its key to match and fails on a missing key, on a deny rule
// any matching value denies and a missing key leaves the rule out; a deny rule beats every allow;
// `enforcement = "audit"` logs a denial and lets it pass.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/policy.hpp"
#include "core/result.hpp"

namespace openshell::l7 {

inline constexpr size_t kMaxHeadBytes = 64 * 1024;  // request line and fields, CRLFs included
inline constexpr size_t kMaxTargetBytes = 8 * 1024;
inline constexpr size_t kMaxQueryParams = 256;

// A request target in origin form ("/a/b?x=1"), canonical:
//   - percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded, every other
//     escape is kept, its hex upper-cased; an escaped '/' (%2F) is refused (with
//     std::errc::permission_denied: a policy's refusal, not a malformed target) unless
//     `allow_encoded_slash` (then it stays escaped, and never splits a segment);
//   - ";params" are stripped from each segment, "//" collapses, "." and ".." segments resolve
//     (".." never climbs above the root);
//   - refused: anything but origin form, a fragment, a malformed or NUL escape, raw bytes
//     outside printable ASCII, more than kMaxTargetBytes.
// `query` is the raw text after '?' (without it), "" when there is none.
struct Target {
  std::string path;
  std::string query;
};
Result<Target> canonicalize(std::string_view target, bool allow_encoded_slash);

// The query's parameters, names and values percent-decoded ('+' stays '+': form encoding is a
// body convention). "a" and "a=" are both ("a", ""). Refused: a malformed or NUL escape, more
// than kMaxQueryParams.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
Result<QueryParams> parse_query(std::string_view query);

// The head's framing, from its raw bytes (request line, fields, the blank line): every line
// ends in CRLF (no bare CR or LF), no obs-fold (a line starting with SP or HT), no NUL or other
// control byte but HT in a field, at most kMaxHeadBytes. Parsers tolerate some of these; a
// request we forward must not mean one thing to us and another upstream.
Status check_head_bytes(std::string_view head);

// The head's fields as parsed: a request with both Content-Length and Transfer-Encoding, more
// than one Content-Length (equal or not), a Content-Length that is not all digits, a
// Transfer-Encoding that does not end in "chunked", or no Host or more than one is refused: each
// is a way to make two parties read two different requests.
using Fields = std::vector<std::pair<std::string, std::string>>;
Status check_framing(const Fields& fields);

// One request as the rules see it.
struct Request {
  std::string method;  // as sent; compared case-insensitively
  std::string path;    // canonical (canonicalize)
  QueryParams query;
};

struct Decision {
  bool allowed = false;
  // Denied by the rules but let through: the endpoint's enforcement is audit.
  bool audit_only = false;
  // What decided: "deny_rules[0]", "rules[2]", "access read-only" (which allowed, or which did
  // not allow, the method), or "" when no rule allowed it.
  std::string rule;
  // For a human and the 403 body: why it was denied (empty when a rule allowed it).
  std::string reason;
};

// The endpoint's verdict on `request`: a deny rule that matches denies; else an allow rule (or
// the access preset: read-only GET/HEAD/OPTIONS, read-write adds POST/PUT/PATCH, full any)
// that matches allows; else it is denied. Audit turns a denial into audit_only.
Decision evaluate(const policy::Endpoint& endpoint, const Request& request);

}  // namespace openshell::l7
