#include "core/credentials.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace openshell::credentials {
namespace {

constexpr std::string_view kEncodedPrefix = "openshell%3Aresolve%3Aenv%3A";

bool key_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

bool iequals_at(std::string_view text, size_t at, std::string_view what) {
  if (text.size() - at < what.size()) return false;
  for (size_t i = 0; i < what.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[at + i])) !=
        std::tolower(static_cast<unsigned char>(what[i])))
      return false;
  return true;
}

// A placeholder at `at`: the length of its prefix (raw or percent-encoded), 0 when none.
size_t prefix_at(std::string_view text, size_t at) {
  if (text.compare(at, kPrefix.size(), kPrefix) == 0) return kPrefix.size();
  if (iequals_at(text, at, kEncodedPrefix)) return kEncodedPrefix.size();
  return 0;
}

// Every placeholder of `text` replaced by encode(secret). A key its Lookup refuses, or one
// that is not a valid key, is an error naming it.
Result<Resolved> substitute(std::string_view text, const Lookup& lookup,
                            const std::function<std::string(const std::string&)>& encode) {
  Resolved out;
  out.text.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t prefix = prefix_at(text, i);
    if (prefix == 0) {
      out.text += text[i++];
      continue;
    }
    size_t end = i + prefix;
    while (end < text.size() && key_char(text[end]) && end - (i + prefix) <= kMaxKeyLength) ++end;
    const std::string key(text.substr(i + prefix, end - (i + prefix)));
    if (!valid_key(key))
      return Error::invalid("a credential placeholder without a valid key (" + key.substr(0, 32) +
                            ")");
    const auto secret = lookup(key);
    if (!secret) return Error::invalid("credential " + key + " is not bound to this endpoint");
    if (auto st = valid_secret(*secret); !st)
      return Error::invalid("credential " + key + ": " + st.error().message());
    out.text += encode(*secret);
    if (std::find(out.keys.begin(), out.keys.end(), key) == out.keys.end()) out.keys.push_back(key);
    i = end;
  }
  return out;
}

std::string percent_encode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 64 * 1024) return std::nullopt;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    const bool pad = c == '=' && i + 2 >= in.size();
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '/' && !pad)
      return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - static_cast<size_t>(std::count(in.end() - 2, in.end(), '=')));
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out((in.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

bool valid_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxKeyLength &&
         std::isdigit(static_cast<unsigned char>(key.front())) == 0 &&
         std::all_of(key.begin(), key.end(), key_char);
}

std::string placeholder(std::string_view key) { return std::string(kPrefix) + std::string(key); }

Status valid_secret(std::string_view secret) {
  if (secret.empty()) return Error::invalid("the value is empty");
  for (const char ch : secret) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return Error::invalid("the value holds a control character");
  }
  return {};
}

std::vector<std::string> keys_in(std::string_view text) {
  std::vector<std::string> keys;
  for (size_t i = 0; i < text.size(); ++i) {
    const size_t prefix = prefix_at(text, i);
    if (prefix == 0) continue;
    size_t end = i + prefix;
    while (end < text.size() && key_char(text[end])) ++end;
    std::string key(text.substr(i + prefix, end - (i + prefix)));
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(std::move(key));
    i = end - 1;
  }
  return keys;
}

namespace {

constexpr std::string_view kBasic = "basic ";

// A "Basic <base64>" value's credentials decoded, and where the base64 starts; nullopt when it
// is none.
std::optional<std::pair<std::string, size_t>> basic_credentials(std::string_view value) {
  if (!iequals_at(value, 0, kBasic)) return std::nullopt;
  size_t start = kBasic.size();
  while (start < value.size() && value[start] == ' ') ++start;
  auto decoded = base64_decode(value.substr(start));
  if (!decoded) return std::nullopt;
  return std::pair(std::move(*decoded), start);
}

}  // namespace

std::vector<std::string> keys_in_header(std::string_view value) {
  auto keys = keys_in(value);
  if (auto basic = basic_credentials(value))
    for (auto& key : keys_in(basic->first))
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(std::move(key));
  return keys;
}

Result<Resolved> resolve_header(std::string_view value, const Lookup& lookup) {
  const auto as_is = [](const std::string& s) { return s; };
  if (auto basic = basic_credentials(value)) {
    const auto& [decoded, start] = *basic;
    if (!keys_in(decoded).empty()) {
      auto inner = substitute(decoded, lookup, as_is);
      if (!inner) return inner.error();
      inner->text = std::string(value.substr(0, start)) + base64_encode(inner->text);
      return inner;
    }
  }
  return substitute(value, lookup, as_is);
}

Result<Resolved> resolve_target(std::string_view target, const Lookup& lookup) {
  return substitute(target, lookup, percent_encode);
}

BodyKind body_kind(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  const auto is = [&type](std::string_view what) {
    return type.size() == what.size() && iequals_at(type, 0, what);
  };
  if (is("application/json") ||
      (type.size() > 5 && iequals_at(type, type.size() - 5, "+json")))
    return BodyKind::kJson;
  if (is("application/x-www-form-urlencoded")) return BodyKind::kForm;
  return BodyKind::kText;
}

Result<Resolved> resolve_body(std::string_view body, BodyKind kind, const Lookup& lookup) {
  if (kind == BodyKind::kForm) return substitute(body, lookup, percent_encode);
  if (kind == BodyKind::kText) return substitute(body, lookup, [](const std::string& s) { return s; });
  return substitute(body, lookup, [](const std::string& s) {
    std::string out;
    for (const char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c == '\t' ? std::string("\\t") : std::string(1, c);
    }
    return out;
  });
}

}  // namespace openshell::credentials
