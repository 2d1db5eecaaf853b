#include "core/http_rules.hpp"

#include <algorithm>
#include <cctype>

#include "core/path_glob.hpp"

namespace openshell::l7 {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Decodes every escape; a malformed one or %00 is an error.
Result<std::string> decode_all(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return Error::invalid("malformed percent-escape");
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return Error::invalid("malformed percent-escape");
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return Error::invalid("an escaped NUL");
    out += c;
    i += 2;
  }
  return out;
}

// One segment of a path, its escapes normalised: unreserved ones decoded, others kept with
// upper-case hex. A %2F is refused unless allowed (then kept).
Result<std::string> normalize_segment(std::string_view seg, bool allow_encoded_slash) {
  std::string out;
  out.reserve(seg.size());
  for (size_t i = 0; i < seg.size(); ++i) {
    const auto c = static_cast<unsigned char>(seg[i]);
    if (c != '%') {
      out += static_cast<char>(c);
      continue;
    }
    if (i + 2 >= seg.size() || hex_value(seg[i + 1]) < 0 || hex_value(seg[i + 2]) < 0)
      return Error::invalid("malformed percent-escape in the path");
    const auto byte =
        static_cast<unsigned char>(hex_value(seg[i + 1]) * 16 + hex_value(seg[i + 2]));
    i += 2;
    if (byte == 0) return Error::invalid("an escaped NUL in the path");
    if (byte == '/' && !allow_encoded_slash)
      return Error{std::make_error_code(std::errc::permission_denied),
                   "an escaped '/' (%2F) in the path (allow_encoded_slash is not set)"};
    if (unreserved(byte)) {
      out += static_cast<char>(byte);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

bool method_matches(std::string_view rule, std::string_view method) {
  if (rule == "*") return true;
  const std::string m = upper(method);
  return rule == m || (rule == "GET" && m == "HEAD");
}

bool path_matches(const std::string& rule, const std::string& path) {
  return rule.empty() || policy::glob_matches(rule, path, policy::GlobSyntax::kSegments);
}

bool value_matches(const policy::QueryMatcher& matcher, const std::string& value) {
  return std::any_of(matcher.any.begin(), matcher.any.end(), [&](const std::string& glob) {
    return policy::glob_matches(glob, value, policy::GlobSyntax::kFlat);
  });
}

// An allow rule's query: every key it names is present, and each of its values matches.
bool allow_query_matches(const policy::L7Rule& rule, const QueryParams& query) {
  for (const auto& [key, matcher] : rule.query) {
    bool present = false;
    for (const auto& [name, value] : query) {
      if (name != key) continue;
      present = true;
      if (!value_matches(matcher, value)) return false;
    }
    if (!present) return false;
  }
  return true;
}

// A deny rule's query: every key it names is present with at least one matching value; a
// missing key means the rule does not apply.
bool deny_query_matches(const policy::L7Rule& rule, const QueryParams& query) {
  for (const auto& wanted : rule.query) {
    const bool hit = std::any_of(query.begin(), query.end(), [&](const auto& param) {
      return param.first == wanted.first && value_matches(wanted.second, param.second);
    });
    if (!hit) return false;
  }
  return true;
}

bool access_allows(policy::Access access, std::string_view method) {
  const std::string m = upper(method);
  const bool read = m == "GET" || m == "HEAD" || m == "OPTIONS";
  switch (access) {
    case policy::Access::kReadOnly:
      return read;
    case policy::Access::kReadWrite:
      return read || m == "POST" || m == "PUT" || m == "PATCH";
    case policy::Access::kFull:
      return true;
  }
  return false;
}

const char* access_name(policy::Access access) {
  switch (access) {
    case policy::Access::kReadOnly:
      return "read-only";
    case policy::Access::kReadWrite:
      return "read-write";
    case policy::Access::kFull:
      return "full";
  }
  return "?";
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<Target> canonicalize(std::string_view target, bool allow_encoded_slash) {
  if (target.size() > kMaxTargetBytes)
    return Error::invalid("request target longer than " + std::to_string(kMaxTargetBytes) +
                          " bytes");
  if (target.empty() || target.front() != '/')
    return Error::invalid("request target is not in origin form (/path)");
  for (const char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f)
      return Error::invalid("raw control, space or non-ASCII byte in the target");
    if (c == '#') return Error::invalid("a fragment in the request target");
  }
  Target out;
  std::string_view path = target;
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    out.query = std::string(target.substr(q + 1));
    path = target.substr(0, q);
  }
  std::vector<std::string> segments;
  size_t at = 1;
  while (at <= path.size()) {
    size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(at, end - at);
    if (const auto semi = seg.find(';'); semi != std::string_view::npos) seg = seg.substr(0, semi);
    auto norm = normalize_segment(seg, allow_encoded_slash);
    if (!norm) return norm.error();
    if (norm->empty() || *norm == ".") {
      // "//" and "/./" collapse
    } else if (*norm == "..") {
      if (!segments.empty()) segments.pop_back();
    } else {
      segments.push_back(std::move(*norm));
    }
    at = end + 1;
  }
  // A trailing slash stays (a directory listing is not the file): "/a/" is not "/a".
  const bool trailing =
      path.size() > 1 && (path.back() == '/' || path.ends_with("/.") || path.ends_with("/.."));
  out.path = "/";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.path += '/';
    out.path += segments[i];
  }
  if (trailing && !segments.empty()) out.path += '/';
  return out;
}

Result<QueryParams> parse_query(std::string_view query) {
  QueryParams out;
  size_t at = 0;
  while (at <= query.size() && !query.empty()) {
    size_t end = query.find('&', at);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(at, end - at);
    if (!pair.empty()) {
      if (out.size() >= kMaxQueryParams)
        return Error::invalid("more than " + std::to_string(kMaxQueryParams) + " query parameters");
      const auto eq = pair.find('=');
      auto name = decode_all(pair.substr(0, eq));
      auto value =
          decode_all(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      if (!name) return name.error();
      if (!value) return value.error();
      out.emplace_back(std::move(*name), std::move(*value));
    }
    at = end + 1;
  }
  return out;
}

Status check_head_bytes(std::string_view head) {
  if (head.size() > kMaxHeadBytes)
    return Error::invalid("request head larger than " + std::to_string(kMaxHeadBytes) + " bytes");
  size_t at = 0;
  bool first = true;
  while (at < head.size()) {
    const size_t lf = head.find('\n', at);
    if (lf == std::string_view::npos)
      return Error::invalid("request head does not end its last line");
    if (lf == at || head[lf - 1] != '\r') return Error::invalid("a bare LF in the request head");
    const std::string_view line = head.substr(at, lf - 1 - at);
    if (line.empty()) {
      if (lf + 1 != head.size()) return Error::invalid("bytes after the request head's end");
      return {};
    }
    if (!first && (line.front() == ' ' || line.front() == '\t'))
      return Error::invalid("a folded header line (obs-fold)");
    for (const char ch : line) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == '\r') return Error::invalid("a bare CR in the request head");
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return Error::invalid("a control byte in the request head");
    }
    first = false;
    at = lf + 1;
  }
  return Error::invalid("request head without its blank line");
}

Status check_framing(const Fields& fields) {
  size_t lengths = 0, hosts = 0;
  bool chunked_last = false, transfer_encoding = false;
  for (const auto& [name, raw] : fields) {
    const std::string_view value = trim(raw);
    if (iequals(name, "Content-Length")) {
      ++lengths;
      if (value.empty() ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return Error::invalid("Content-Length is not a number");
    } else if (iequals(name, "Transfer-Encoding")) {
      transfer_encoding = true;
      // The codings in order; the last one of all the fields' is what frames the body.
      std::string_view rest = value;
      std::string_view last;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        last = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      chunked_last = iequals(last, "chunked");
    } else if (iequals(name, "Host")) {
      ++hosts;
    }
  }
  if (lengths > 0 && transfer_encoding)
    return Error::invalid("both Content-Length and Transfer-Encoding");
  if (lengths > 1) return Error::invalid("more than one Content-Length");
  if (transfer_encoding && !chunked_last)
    return Error::invalid("a Transfer-Encoding that does not end in chunked");
  if (hosts != 1) return Error::invalid(hosts == 0 ? "no Host" : "more than one Host");
  return {};
}

Decision evaluate(const policy::Endpoint& endpoint, const Request& request) {
  Decision d;
  for (size_t i = 0; i < endpoint.deny_rules.size(); ++i) {
    const auto& rule = endpoint.deny_rules[i];
    if (method_matches(rule.method, request.method) && path_matches(rule.path, request.path) &&
        deny_query_matches(rule, request.query)) {
      d.rule = "deny_rules[" + std::to_string(i) + "]";
      d.reason = "a deny rule matches " + upper(request.method) + " " + request.path;
      break;
    }
  }
  if (d.rule.empty()) {
    if (endpoint.access && access_allows(*endpoint.access, request.method)) {
      d.allowed = true;
      d.rule = std::string("access ") + access_name(*endpoint.access);
    }
    for (size_t i = 0; i < endpoint.rules.size() && !d.allowed; ++i) {
      const auto& rule = endpoint.rules[i];
      if (method_matches(rule.method, request.method) && path_matches(rule.path, request.path) &&
          allow_query_matches(rule, request.query)) {
        d.allowed = true;
        d.rule = "rules[" + std::to_string(i) + "]";
      }
    }
    if (!d.allowed && endpoint.access) {
      d.rule = std::string("access ") + access_name(*endpoint.access);
      d.reason = d.rule + " does not allow " + upper(request.method);
    } else if (!d.allowed) {
      d.reason = "no rule allows " + upper(request.method) + " " + request.path;
    }
  }
  if (!d.allowed && endpoint.enforcement == policy::Enforcement::kAudit) {
    d.allowed = true;
    d.audit_only = true;
  }
  return d;
}

}  // namespace openshell::l7
